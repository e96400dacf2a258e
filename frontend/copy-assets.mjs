// Copy the installed chart library (and its licence) into the Python package's static folder,
// where `mmbind serve` serves it: the page then works with no network.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "mmbind", "serve", "static", "vendor");
const plotly = join(here, "node_modules", "plotly.js-gl2d-dist-min");
mkdirSync(target, { recursive: true });
copyFileSync(join(plotly, "plotly-gl2d.min.js"), join(target, "plotly-gl2d.min.js"));
copyFileSync(join(plotly, "LICENSE"), join(target, "plotly-LICENSE.txt"));
console.log(`copied plotly-gl2d.min.js to ${target}`);
