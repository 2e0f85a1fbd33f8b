/**
 * The manager's held locks (lib/core/held-set.ts): a list linked through its members, in the
 * order they were added, as the `Set` it replaced (adding a member again keeps its place).
 */
import { describe, expect, it } from 'vitest';
import { HeldLink, HeldSet } from '../../lib/core/held-set.js';

class Member {
  readonly heldLink: HeldLink<Member> = new HeldLink<Member>(this);
  constructor(readonly name: string) {}
}

const names = (set: HeldSet<Member>) => set.toArray().map((m) => m.name);

describe('HeldSet', () => {
  it('keeps insertion order through adds, re-adds and deletes anywhere in the list', () => {
    const set = new HeldSet<Member>();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => new Member(n)) as [
      Member,
      Member,
      Member,
      Member,
    ];
    expect(names(set)).toEqual([]);
    set.add(a);
    set.add(b);
    set.add(c);
    set.add(b); // already in: keeps its place, counted once
    expect(names(set)).toEqual(['a', 'b', 'c']);
    expect(set.size).toBe(3);
    expect(set.delete(b)).toBe(true); // middle
    expect(set.delete(b)).toBe(false);
    expect(names(set)).toEqual(['a', 'c']);
    expect(set.delete(a)).toBe(true); // head
    set.add(d);
    set.add(a); // back in: goes last
    expect(names(set)).toEqual(['c', 'd', 'a']);
    expect(set.delete(a)).toBe(true); // tail
    expect(set.has(a)).toBe(false);
    expect(set.has(c)).toBe(true);
    expect(names(set)).toEqual(['c', 'd']);
    set.delete(c);
    set.delete(d);
    expect(names(set)).toEqual([]);
    expect(set.size).toBe(0);
    set.add(b);
    expect(names(set)).toEqual(['b']);
  });
});
