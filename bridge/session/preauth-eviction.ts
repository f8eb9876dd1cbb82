/**
 * Which connections that have not authenticated yet make room for a new one (pure).
 *
 * The pre-authentication quota (limits.maxPreAuthConnections) never refuses a newcomer: the oldest waiting
 * connection goes instead, so sockets that never initialize cannot keep a real client out. Taken from the
 * address that holds the most waiting connections (the newcomer counted), a flood from one address evicts its
 * own sockets and not a client elsewhere that is between its upgrade and its `initialize`. With a single
 * address (everyone behind one proxy) this is plain oldest-first.
 */
export interface Waiting { address: string }

/** `waiting` oldest first; returns the ones to evict so that `quota` - 1 remain beside the newcomer. */
export function preAuthVictims<T extends Waiting>(waiting: readonly T[], newcomer: string, quota: number): T[] {
  const left = [...waiting];
  const count = new Map<string, number>([[newcomer, 1]]);
  for (const w of left) count.set(w.address, (count.get(w.address) ?? 0) + 1);
  const victims: T[] = [];
  while (left.length > 0 && left.length >= quota) {
    // The oldest waiting connection of the most crowded address (ties: the address whose oldest is oldest).
    let pick = 0;
    for (let i = 1; i < left.length; i++) if (count.get(left[i].address)! > count.get(left[pick].address)!) pick = i;
    const [victim] = left.splice(pick, 1);
    count.set(victim.address, count.get(victim.address)! - 1);
    victims.push(victim);
  }
  return victims;
}
