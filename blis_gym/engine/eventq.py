"""Instance event queue: a binary min-heap on timestamp alone.

Events with equal timestamps come out in the order that Go's
``container/heap`` sift-up/sift-down produces, which is what the reference's
instance queue does. ``heapq`` sifts differently, so ties would differ.
Entries are tuples whose first item is the time in ticks.
"""

from __future__ import annotations


def push(heap: list, item: tuple) -> None:
    """Append ``item`` and sift it up (Go ``heap.Push``)."""
    heap.append(item)
    j = len(heap) - 1
    t = item[0]
    while j > 0:
        i = (j - 1) >> 1
        parent = heap[i]
        if not t < parent[0]:
            break
        heap[j] = parent
        j = i
    heap[j] = item


def pop(heap: list) -> tuple:
    """Remove and return the minimum (Go ``heap.Pop``: swap root with last, sift down)."""
    n = len(heap) - 1
    top = heap[0]
    if n == 0:
        heap.pop()
        return top
    item = heap[n]
    heap[0] = item
    heap.pop()
    # Sift down over heap[0:n] exactly as Go's down(): pick the smaller child,
    # the right one only when strictly smaller, move while strictly smaller.
    t = item[0]
    i = 0
    while True:
        j1 = 2 * i + 1
        if j1 >= n:
            break
        j = j1
        j2 = j1 + 1
        if j2 < n and heap[j2][0] < heap[j1][0]:
            j = j2
        child = heap[j]
        if not child[0] < t:
            break
        heap[i] = child
        i = j
    heap[i] = item
    return top
