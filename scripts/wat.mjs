// WebAssembly text -> binary with wabt (a devDependency: only this script and its test use it).
import wabtInit from "wabt";

/** The module's bytes; throws with wabt's message on a syntax or validation error. */
export async function assemble(text, name) {
  const wabt = await wabtInit();
  const features = { threads: true, bulk_memory: true };
  const mod = wabt.parseWat(name, text, features);
  try {
    mod.validate(features);
    return new Uint8Array(mod.toBinary({ log: false, write_debug_names: false }).buffer);
  } finally {
    mod.destroy();
  }
}
