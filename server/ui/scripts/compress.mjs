// Writes a gzip copy beside each text asset of dist/ (the server sends it
// to clients that accept gzip) and prints the sizes. Deterministic: zlib's
// header carries no time or name.
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";

const dist = new URL("../dist/", import.meta.url).pathname;
const text = /\.(html|js|css|svg|json|txt)$/;
let raw = 0;
let zipped = 0;
function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      walk(path);
    } else if (text.test(name)) {
      const bytes = readFileSync(path);
      const gz = gzipSync(bytes, { level: 9 });
      writeFileSync(`${path}.gz`, gz);
      raw += bytes.length;
      zipped += gz.length;
      console.log(`${relative(dist, path).padEnd(40)} ${String(bytes.length).padStart(8)} B  gzip ${String(gz.length).padStart(7)} B`);
    }
  }
}
walk(dist);
console.log(`${"total".padEnd(40)} ${String(raw).padStart(8)} B  gzip ${String(zipped).padStart(7)} B`);
