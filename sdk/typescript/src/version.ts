/** The SDK's version (also sent as its User-Agent). @example `console.log(VERSION)` */
export const VERSION = '0.1.0';
