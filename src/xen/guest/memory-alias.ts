// One set of bytes, two address spaces: the kernel's own view of its RAM (guest-physical, a
// PhysicalMemory the kernel's swiotlb and dma-direct work on) and the machine's RAM (the
// PhysicalMemory Xen and the devices see). Stage 2 maps the first onto the second; dmalab
// makes the mapping real by sharing RAM chunks: a guest chunk and the machine chunk behind it
// are one SharedArrayBuffer, whichever side touches it first. Sharing needs whole 2 MiB
// chunks, so each guest chunk must be backed by one naturally aligned 2 MiB machine block —
// direct-mapped RAM always is, and the stub Xen backs translated guests that way when its
// heap allows.

import { LimitError, hex } from "../../errors.js";
import type { PhysicalMemory } from "../../memory/physical-memory.js";

/**
 * Shares the guest's RAM chunks with the machine's. `toMachine(guestChunkAddr)` gives the
 * machine address of the chunk (chunk-aligned), or undefined when it is not one block.
 */
export function aliasGuestRam(guest: PhysicalMemory, machine: PhysicalMemory, toMachine: (guestAddr: number) => number | undefined): void {
  if (guest.chunkSize !== machine.chunkSize) throw new LimitError(`guest and machine memory use different chunk sizes (${guest.chunkSize}, ${machine.chunkSize})`);
  const cs = guest.chunkSize;
  const g2m = new Map<number, number>();
  const m2g = new Map<number, number>();
  for (const b of guest.banks)
    for (let a = b.base; a < b.end; a += cs) {
      const m = toMachine(a);
      if (m === undefined || m % cs !== 0 || !machine.isRam(m, Math.min(cs, b.end - a)))
        throw new LimitError(`guest RAM chunk at ${hex(a)} is not backed by one aligned ${cs >> 20} MiB machine block`);
      g2m.set(a, m);
      m2g.set(m, a);
    }
  // put `chunk`'s buffer at `addr` of `mem`, with the view length that memory expects there
  const install = (mem: PhysicalMemory, addr: number, chunk: Uint8Array): void => {
    const bank = mem.bankAt(addr)!;
    const i = Math.floor((addr - bank.base) / cs);
    if (bank.chunks[i] !== undefined) return;
    const len = Math.min(cs, bank.size - i * cs);
    bank.chunks[i] = new Uint8Array(chunk.buffer, chunk.byteOffset, len);
  };
  // chunks the machine already has
  for (const { addr, chunk } of machine.allocatedChunks()) {
    const g = m2g.get(addr);
    if (g !== undefined) install(guest, g, chunk);
  }
  for (const { addr, chunk } of guest.allocatedChunks()) install(machine, g2m.get(addr)!, chunk);
  machine.onChunkAllocated((addr, chunk) => {
    const g = m2g.get(addr);
    if (g !== undefined) install(guest, g, chunk);
  });
  guest.onChunkAllocated((addr, chunk) => install(machine, g2m.get(addr)!, chunk));
}
