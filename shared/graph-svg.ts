/** DOT → SVG with Graphviz compiled to WebAssembly (@hpcc-js/wasm-graphviz): no system package, works air-gapped. */
import { Graphviz } from '@hpcc-js/wasm-graphviz';

let gv: Promise<Graphviz> | undefined;

export async function dotToSvg(dot: string): Promise<string> {
  gv ??= Graphviz.load();
  return (await gv).dot(dot);
}
