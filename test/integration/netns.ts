// the namespace helpers live with the demo that uses them too
export * from '../../cli/netns.js';
