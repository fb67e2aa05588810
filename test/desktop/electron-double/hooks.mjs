// ESM resolve hook (module.register) of the Electron double: `import ... from 'electron'` in the
// app's bundle resolves to the double's module, the one cli.ts has already loaded (same URL, so
// the same instance). CommonJS requires are mapped in cli.ts.
let doubleUrl;

export function initialize(data) {
  doubleUrl = data.doubleUrl;
}

export async function resolve(specifier, context, next) {
  if (specifier === 'electron') return { url: doubleUrl, shortCircuit: true };
  return next(specifier, context);
}
