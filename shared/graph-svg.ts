/** DOT → SVG with Graphviz compiled to WebAssembly (@hpcc-js/wasm-graphviz): no system package, works air-gapped. */
import type { Graphviz } from '@hpcc-js/wasm-graphviz';

let gv: Promise<Graphviz> | undefined;

export async function dotToSvg(dot: string): Promise<string> {
  // loaded on first use: the module embeds the WebAssembly build, too heavy for every CLI start
  gv ??= import('@hpcc-js/wasm-graphviz').then((m) => m.Graphviz.load());
  return (await gv).dot(dot);
}
