/** The web console: `consoleHandler({store, detection, token, log})` for the aggregator's HTTP server. See handler.ts. */
export { consoleHandler, CONSOLE_REQUEST_HEADER, isLoopbackAddress, isLoopbackHost, type ConsoleHandler, type ConsoleOptions, type ConsoleCounters } from './handler.js';
