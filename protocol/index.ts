export * from './version';
export * from './errors';
export * from './frames';
export * from './messages';
