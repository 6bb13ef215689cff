// Writes ../vendor/THIRD_PARTY_LICENSES.txt: the license of every npm package
// whose code esbuild put into ../vendor/codemirror.js (read from meta.json).
import { readFileSync, writeFileSync, existsSync, unlinkSync } from "node:fs";

const meta = JSON.parse(readFileSync("meta.json", "utf8"));
const packages = new Set();
for (const input of Object.keys(meta.inputs)) {
  const m = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (m) packages.add(m[1]);
}
const parts = ["Third-party code bundled into codemirror.js (built by web_demo/vendor-src, see docs/web_demo.md).\n"];
for (const name of [...packages].sort()) {
  const dir = `node_modules/${name}`;
  const pkg = JSON.parse(readFileSync(`${dir}/package.json`, "utf8"));
  const file = ["LICENSE", "LICENSE.md", "LICENSE.txt", "license"].map((f) => `${dir}/${f}`).find(existsSync);
  parts.push(`${"=".repeat(72)}\n${name} ${pkg.version} — ${pkg.license}\n${"=".repeat(72)}\n`);
  parts.push(file ? readFileSync(file, "utf8").trim() + "\n" : `(no license file; package.json says ${pkg.license})\n`);
}
writeFileSync("../vendor/THIRD_PARTY_LICENSES.txt", parts.join("\n"));
unlinkSync("meta.json");
console.log(`licenses of ${packages.size} packages -> ../vendor/THIRD_PARTY_LICENSES.txt`);
