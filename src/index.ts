// Placeholder library entry for packaging; the real public API replaces this file.
export { hex } from "./errors.js";
