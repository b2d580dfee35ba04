import { describe, expect, it } from "vitest";
import { PhysicalMemory } from "../../src/memory/physical-memory.js";
import { Device } from "../../src/dma/device.js";
import { DeviceBus } from "../../src/dma/bus.js";
import {
  CMD_COPY,
  CMD_FILL,
  CMD_RESET,
  CMD_RING,
  DESC_SIZE,
  DESC_STATUS_DONE,
  DESC_STATUS_ERROR,
  DmaEngine,
  ENGINE_ID,
  ERR_BAD_LENGTH,
  ERR_DST_FAULT,
  ERR_SRC_FAULT,
  EngineRegisterError,
  REG_CTRL,
  REG_DST,
  REG_ERROR,
  REG_ERROR_ADDR,
  REG_FILL,
  REG_ID,
  REG_LEN,
  REG_RING_BASE,
  REG_RING_COUNT,
  REG_RING_HEAD,
  REG_RING_TAIL,
  REG_SRC,
  REG_STATUS,
  STATUS_DONE,
  STATUS_ERROR,
  dmaEngineBaseFor,
  DMA_ENGINE_BASE_DEFAULT,
  DMA_ENGINE_BASE_LOW_RAM,
} from "../../src/dma/engine.js";
import { dmaBitMask } from "../../src/kernel/dma-mapping.js";

const RAM = 0x4000_0000;

function setup(maskBits = 32) {
  const mem = new PhysicalMemory({ banks: [{ base: RAM, size: 64 * 1024 * 1024 }, { base: 0x1_0000_0000, size: 16 * 1024 * 1024 }] });
  const dev = new Device({ driver: "dmaengine", device: "test", dmaMask: dmaBitMask(maskBits) });
  const eng = new DmaEngine(new DeviceBus(dev, mem));
  return { mem, eng };
}

const w32 = (e: DmaEngine, off: number, v: number): void => e.write(off, 4, BigInt(v));
const w64 = (e: DmaEngine, off: number, v: number): void => e.write(off, 8, BigInt(v));
const r32 = (e: DmaEngine, off: number): number => Number(e.read(off, 4));

describe("DmaEngine", () => {
  it("identifies itself and copies through the bus", () => {
    const { mem, eng } = setup();
    expect(r32(eng, REG_ID)).toBe(ENGINE_ID);
    const src = new Uint8Array(3000).map((_, i) => (i * 7 + 3) & 0xff);
    mem.write(RAM + 0x1000, src);
    w64(eng, REG_SRC, RAM + 0x1000);
    w64(eng, REG_DST, RAM + 0x9000);
    w32(eng, REG_LEN, src.length);
    w32(eng, REG_CTRL, CMD_COPY);
    expect(r32(eng, REG_STATUS)).toBe(STATUS_DONE);
    expect(mem.read(RAM + 0x9000, src.length)).toEqual(src);
    expect(mem.read8(RAM + 0x9000 + src.length)).toBe(0);
  });

  it("fills", () => {
    const { mem, eng } = setup();
    w64(eng, REG_DST, RAM + 0x2001);
    w32(eng, REG_LEN, 100);
    w32(eng, REG_FILL, 0x1a5);
    w32(eng, REG_CTRL, CMD_FILL);
    expect(r32(eng, REG_STATUS)).toBe(STATUS_DONE);
    expect([...mem.read(RAM + 0x2000, 102)]).toEqual([0, ...new Array<number>(100).fill(0xa5), 0]);
  });

  it("a destination beyond the device's mask sets ERROR and writes nothing", () => {
    const { mem, eng } = setup(32);
    mem.fill(RAM, 64, 0x11);
    w64(eng, REG_SRC, RAM);
    w64(eng, REG_DST, 0x1_0000_0000);
    w32(eng, REG_LEN, 64);
    w32(eng, REG_CTRL, CMD_COPY);
    expect(r32(eng, REG_STATUS)).toBe(STATUS_ERROR);
    expect(r32(eng, REG_ERROR)).toBe(ERR_DST_FAULT);
    expect(Number(eng.read(REG_ERROR_ADDR, 8))).toBe(0x1_0000_0000);
    expect(mem.read(0x1_0000_0000, 64).every((b) => b === 0)).toBe(true);
    // a source straddling the end of RAM: nothing written either
    w64(eng, REG_SRC, RAM + 64 * 1024 * 1024 - 16);
    w64(eng, REG_DST, RAM + 0x3000);
    w32(eng, REG_CTRL, CMD_COPY);
    expect(r32(eng, REG_ERROR)).toBe(ERR_SRC_FAULT);
    expect(mem.read(RAM + 0x3000, 64).every((b) => b === 0)).toBe(true);
    w32(eng, REG_LEN, 0);
    w32(eng, REG_CTRL, CMD_COPY);
    expect(r32(eng, REG_ERROR)).toBe(ERR_BAD_LENGTH);
    w32(eng, REG_CTRL, CMD_RESET);
    expect(r32(eng, REG_STATUS)).toBe(0);
  });

  it("runs a descriptor ring and writes each descriptor's status", () => {
    const { mem, eng } = setup(64);
    const ring = RAM + 0x10000;
    const descs = [
      { src: RAM + 0x20000, dst: RAM + 0x30000, len: 512, flags: 0 },
      { src: 0, dst: RAM + 0x31000, len: 256, flags: 1 | (0x5a << 8) },
      { src: RAM + 0x20000, dst: 0x8000_0000, len: 16, flags: 0 }, // not RAM: fails
    ];
    mem.write(RAM + 0x20000, new Uint8Array(512).map((_, i) => i & 0xff));
    descs.forEach((d, i) => {
      const a = ring + i * DESC_SIZE;
      mem.write64(a, BigInt(d.src));
      mem.write64(a + 8, BigInt(d.dst));
      mem.write32(a + 16, d.len);
      mem.write32(a + 20, d.flags);
    });
    w64(eng, REG_RING_BASE, ring);
    w32(eng, REG_RING_COUNT, 4);
    w32(eng, REG_RING_HEAD, 0);
    w32(eng, REG_RING_TAIL, 3);
    w32(eng, REG_CTRL, CMD_RING);
    expect(r32(eng, REG_STATUS)).toBe(STATUS_ERROR);
    expect(r32(eng, REG_RING_HEAD)).toBe(2);
    expect(mem.read32(ring + 24)).toBe(DESC_STATUS_DONE);
    expect(mem.read32(ring + DESC_SIZE + 24)).toBe(DESC_STATUS_DONE);
    expect(mem.read32(ring + 2 * DESC_SIZE + 24)).toBe((DESC_STATUS_ERROR | ERR_DST_FAULT) >>> 0);
    expect(mem.read(RAM + 0x30000, 512)).toEqual(mem.read(RAM + 0x20000, 512));
    expect(mem.read(RAM + 0x31000, 256).every((b) => b === 0x5a)).toBe(true);
  });

  it("refuses wrong widths and unknown offsets; 64-bit registers take 32-bit halves", () => {
    const { eng } = setup();
    expect(() => eng.read(REG_STATUS, 8)).toThrow(EngineRegisterError);
    expect(() => eng.write(REG_LEN, 2, 1n)).toThrow(EngineRegisterError);
    expect(() => eng.read(0x800, 4)).toThrow(EngineRegisterError);
    expect(() => eng.read(REG_SRC, 2)).toThrow(EngineRegisterError);
    eng.write(REG_DST, 4, 0x89abcdefn);
    eng.write(REG_DST + 4, 4, 0x1n);
    expect(eng.read(REG_DST, 8)).toBe(0x1_89ab_cdefn);
    expect(eng.read(REG_DST + 4, 4)).toBe(1n);
  });

  it("picks a free MMIO base per board", () => {
    expect(dmaEngineBaseFor([{ base: RAM, size: 2 ** 31 }])).toBe(DMA_ENGINE_BASE_DEFAULT);
    expect(dmaEngineBaseFor([{ base: 0, size: 0x3b40_0000 }])).toBe(DMA_ENGINE_BASE_LOW_RAM);
  });
});
