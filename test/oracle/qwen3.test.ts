import { defineOracleTests } from "../helpers/oracle-suite.ts";

defineOracleTests("qwen3");
