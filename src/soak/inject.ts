// `--inject pool-full@P,exchange-enomem@K,device-error@P,hypercall-fail@P`: which faults a soak
// plants and how often. The decisions are drawn from the soak's seeded stream and recorded in
// each operation, so a run and its replay see the same faults.

import { UsageError } from "../errors.js";
import type { FaultPlan } from "./ops.js";

export const FAULT_KINDS = ["pool-full", "exchange-enomem", "device-error", "hypercall-fail"] as const;
type FaultKind = (typeof FAULT_KINDS)[number];

const MAX_SPEC = 200;

function prob(kind: string, v: string): number {
  const p = /^(0(\.[0-9]+)?|1(\.0+)?)$/.test(v) ? Number(v) : NaN;
  if (!(p >= 0 && p <= 1)) throw new UsageError(`--inject ${kind}@${v.slice(0, 20)}: the probability must be a decimal 0..1`);
  return p;
}

export function parseInject(spec: string): FaultPlan {
  if (spec.length > MAX_SPEC) throw new UsageError(`--inject '${spec.slice(0, 40)}…' (${spec.length} characters): at most ${MAX_SPEC}`);
  const plan: FaultPlan = { poolFull: 0, exchangeEnomemAt: 0, deviceError: 0, hypercallFail: 0 };
  const seen = new Set<string>();
  for (const part of spec.split(",")) {
    const m = /^([a-z-]+)@(.+)$/.exec(part.trim());
    if (m === null) throw new UsageError(`--inject '${part.slice(0, 40)}': expected KIND@VALUE (kinds: ${FAULT_KINDS.join(", ")})`);
    const kind = m[1]!;
    const v = m[2]!;
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) throw new UsageError(`--inject '${kind.slice(0, 40)}': expected one of ${FAULT_KINDS.join(", ")}`);
    if (seen.has(kind)) throw new UsageError(`--inject ${kind}: given twice`);
    seen.add(kind);
    switch (kind as FaultKind) {
      case "pool-full":
        plan.poolFull = prob(kind, v);
        break;
      case "device-error":
        plan.deviceError = prob(kind, v);
        break;
      case "hypercall-fail":
        plan.hypercallFail = prob(kind, v);
        break;
      case "exchange-enomem": {
        if (!/^[1-9][0-9]{0,8}$/.test(v)) throw new UsageError(`--inject exchange-enomem@${v.slice(0, 20)}: K must be an extent number 1..999999999`);
        plan.exchangeEnomemAt = Number(v);
        break;
      }
    }
  }
  return plan;
}
