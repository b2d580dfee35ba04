// Optional host features (WebAssembly modules, koffi's libc, transparent huge pages, gc()) are
// probed once per process. When one is missing, dmalab takes a slower path that gives the same
// answers; why the probe failed is kept here, so that a report or a test can tell that a fast
// path was not taken instead of it silently going missing.

const missing = new Map<string, string>();

/** Records that `feature` is not available on this host (the first reason is kept). */
export function noteMissingHostFeature(feature: string, why: unknown): void {
  if (!missing.has(feature)) missing.set(feature, why instanceof Error ? why.message.split("\n")[0]! : String(why));
}

/** The host features found missing so far, with the reason of each. */
export function missingHostFeatures(): ReadonlyMap<string, string> {
  return missing;
}
