// What a workload run reports. Byte counts are exact; the integrity check compares every byte
// the device read (CPU→device) and every byte the CPU got back (device→CPU).

export interface CorruptionReport {
  device: string;
  direction: "to-device" | "from-device";
  dma: number;
  offset: number;
  expected: number;
  got: number;
  bounced: boolean;
}

export interface DeviceStats {
  device: string;
  mappings: number;
  bounced: number;
  direct: number;
  mapErrors: number;
  bouncedBytes: number;
  directBytes: number;
}

export interface WorkloadStats {
  workload: string;
  ops: number;
  seed: number;
  mappings: number;
  bounced: number;
  direct: number;
  /** maps that returned DMA_MAPPING_ERROR (pool full, or an unreachable address without a pool) */
  mapErrors: number;
  bouncedBytes: number;
  directBytes: number;
  /** bytes compared by the integrity check, both directions */
  verifiedBytes: number;
  /** of those, bytes that went through a bounce buffer */
  verifiedBouncedBytes: number;
  corruptBytes: number;
  firstCorruption: CorruptionReport | null;
  poolFull: number;
  io_tlb_used_hiwater: number;
  /** io_tlb_used after the run: every mapping was unmapped, so 0 unless slots leaked */
  io_tlb_used_after: number;
  elapsedMs: number;
  mappingsPerSec: number;
  /** bytes mapped (bounced + direct) per second */
  bytesPerSec: number;
  devices: DeviceStats[];
}

export function emptyDeviceStats(device: string): DeviceStats {
  return { device, mappings: 0, bounced: 0, direct: 0, mapErrors: 0, bouncedBytes: 0, directBytes: 0 };
}
