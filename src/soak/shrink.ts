// Shrinking a failing op list to a short one that still fails the same way: first the shortest
// tail that fails (most violations need only the last few operations and the mappings they
// name), then delta debugging over what is left, within a time budget. Each try replays on a
// freshly booted machine.

export type FailsFn = (ops: readonly number[]) => boolean;

/**
 * `idx` are op indices (ascending) whose replay fails. Returns a subsequence that still fails,
 * as short as the budget allows.
 */
export function shrinkOps(idx: readonly number[], fails: FailsFn, budgetMs: number): number[] {
  const t0 = performance.now();
  const out = (): boolean => performance.now() - t0 > budgetMs;
  let cur = [...idx];
  // the last op always stays: it is where the violation shows
  for (let k = 1; k < cur.length && !out(); k *= 2) {
    const tail = cur.slice(cur.length - k);
    if (fails(tail)) {
      cur = tail;
      break;
    }
  }
  let chunk = Math.max(1, Math.floor(cur.length / 2));
  while (chunk >= 1 && !out()) {
    let removed = false;
    for (let start = 0; start + chunk < cur.length && !out(); ) {
      const cand = [...cur.slice(0, start), ...cur.slice(start + chunk)];
      if (fails(cand)) {
        cur = cand;
        removed = true;
      } else start += chunk;
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return cur;
}
