/**
 * A doubly linked list threaded through its nodes (intrusive): a node carries its own `prev`,
 * `next` and `linked`, so linking and unlinking one is a few stores and allocates nothing. The
 * list of a manager's held locks (held-set.ts) and of a timer queue's deadlines (timer-queue.ts),
 * both on the hot path of every acquire + release.
 */

/** @internal what a node of an `IntrusiveList` carries (its own fields: no wrapper object). */
export interface ListNode<N> {
  prev: N | undefined;
  next: N | undefined;
  /** Whether the node is in a list now. */
  linked: boolean;
}

/**
 * @internal the ends of a list of nodes `N`, and how a node leaves it. How a node comes in is the
 * list's own: appended (held-set.ts), put in order of its deadline (timer-queue.ts).
 */
export abstract class IntrusiveList<N extends ListNode<N>> {
  protected head: N | undefined = undefined;
  protected tail: N | undefined = undefined;

  /** Takes `node`, a node of this list, out of it. */
  protected unlink(node: N): void {
    node.linked = false;
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = undefined;
  }
}
