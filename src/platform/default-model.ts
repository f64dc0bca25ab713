import { fileURLToPath } from "node:url";

/** The bundled default model (stories260K, MIT), shipped in the package's models/ folder. */
export function defaultModelPath(): string {
  // Two levels up from src/platform or dist/platform is the package root.
  return fileURLToPath(new URL("../../models/stories260K.gguf", import.meta.url));
}
