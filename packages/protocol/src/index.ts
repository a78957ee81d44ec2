export * from './model.ts';
export * from './errors.ts';
export * from './text.ts';
export * from './json.ts';
export * from './sse.ts';
export * from './validate.ts';
export * from './parse.ts';
