// Validates rendered Kubernetes objects against the Kubernetes API schemas,
// offline. test/helm/check.sh copies this file into .tools/validator (where
// scripts/fetch-tools.sh installed its dependencies) and runs it there.
//
//   node validate.mjs OBJECTS.json
//
// OBJECTS.json is a list of {"source": "where it came from", "object": {...}}.
// Two passes, each against the schemas of the Kubernetes OpenAPI spec that
// the npm package kubernetes-models is generated from:
//
//  1. schema: kubernetes-models' precompiled JSON-schema validators (ajv):
//     required fields, types, enums, formats (int32, int-or-string, ...).
//  2. strict: those validators allow unknown fields, which the API server
//     and `kubectl apply` (--validate=strict) reject. So each object is also
//     written out as a TypeScript object literal typed with the same
//     package's interfaces and checked with tsc: a misspelt or misplaced
//     field is an excess-property error.
//
// A kind with no schema is an error, not a skip. Prints one line per problem
// and exits 1 if there was any.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

function modulePath(obj) {
  const { apiVersion, kind } = obj;
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Za-z0-9]+$/.test(kind)) {
    return null;
  }
  // The core group is "v1"; the others are "group/version", as in the package.
  if (!/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion)) return null;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

function name(item) {
  const o = item.object || {};
  const md = o.metadata || {};
  return `${item.source}: ${o.kind}/${md.name}`;
}

const items = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failures = 0;
const fail = (msg) => {
  failures++;
  console.log(msg);
};

// Pass 1: JSON schema.
const typed = [];
for (const item of items) {
  const mod = modulePath(item.object);
  let Model;
  try {
    Model = mod && (await import(mod))[item.object.kind];
  } catch {
    Model = undefined;
  }
  if (!Model) {
    fail(`${name(item)}: no schema for ${item.object.apiVersion} ${item.object.kind}`);
    continue;
  }
  try {
    new Model(item.object).validate();
  } catch (e) {
    fail(`${name(item)}: schema: ${e.message}`);
  }
  typed.push({ item, mod });
}

// Pass 2: unknown fields, via tsc.
if (typed.length > 0) {
  const dir = mkdtempSync(join(here, ".check-"));
  try {
    const lines = [];
    const lineOwner = new Map();
    typed.forEach(({ item, mod }, i) => {
      lines.push(`import type { I${item.object.kind} as T${i} } from ${JSON.stringify(mod)};`);
    });
    typed.forEach(({ item }, i) => {
      lines.push(`export const o${i}: T${i} = ${JSON.stringify(item.object)};`);
      lineOwner.set(lines.length, item);
    });
    writeFileSync(join(dir, "objects.ts"), lines.join("\n") + "\n");
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          skipLibCheck: true,
          types: [],
        },
        files: ["objects.ts"],
      }),
    );
    const tsc = spawnSync(join(here, "node_modules", ".bin", "tsc"), ["-p", dir, "--pretty", "false"], {
      encoding: "utf8",
    });
    if (tsc.error) {
      fail(`strict: cannot run tsc: ${tsc.error.message}`);
    } else if (tsc.status !== 0) {
      const out = (tsc.stdout || "") + (tsc.stderr || "");
      let matched = 0;
      for (const line of out.split("\n")) {
        const m = /^.*objects\.ts\((\d+),\d+\): error (TS\d+: .*)$/.exec(line);
        if (!m) continue;
        matched++;
        const owner = lineOwner.get(Number(m[1]));
        fail(`${owner ? name(owner) : "objects.ts line " + m[1]}: strict: ${m[2]}`);
      }
      if (matched === 0) fail(`strict: tsc failed: ${out.trim().split("\n").slice(0, 5).join(" | ")}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`validated ${items.length} objects: ${failures === 0 ? "ok" : failures + " problem(s)"}`);
process.exit(failures === 0 ? 0 : 1);
