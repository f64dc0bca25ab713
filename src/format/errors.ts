/** A model file is malformed or not what mimo expects. The message names the file and the problem. */
export class ModelFileError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "ModelFileError";
    this.file = file;
  }
}
