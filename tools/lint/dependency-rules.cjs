/**
 * Who may import what in CloudToLocalLLM: the one place these rules are written (docs/architecture.md
 * draws them). dependency-cruiser checks every import (type-only ones too) of every file against
 * them; test/architecture/import-rules.test.ts runs it in `npm test` and fails on any violation with
 * the file, the import and the rule's name and comment.
 *
 * Run it by hand (from the repository root):
 *   tools/lint/node_modules/.bin/depcruise --config tools/lint/dependency-rules.cjs bridge main renderer server test bench scripts
 *
 * Paths are the real files (workspace packages resolve through their node_modules/@cloudtolocalllm
 * links to these folders). A file ending in .test.ts may use what test/ may (tests use everything);
 * the package rules hold for it all the same.
 */

/** Each package's folder, as a regular expression on the path. */
const PACKAGES = {
  bridge: '^bridge/',
  server: '^server/(?!api-contract/|proxy-spec/|docker-api-filter/)',
  'api-contract': '^server/api-contract/',
  'proxy-spec': '^server/proxy-spec/',
  'docker-api-filter': '^server/docker-api-filter/',
  dom: '^renderer/dom/',
  'ollama-emulator': '^test/emulator/',
  // The root package: the desktop app (main/, renderer/) and the project's tests, bench, scripts.
  cloudtolocalllm: '^(main/|renderer/(?!dom/)|test/(?!emulator/)|bench/|scripts/|[^/]+$)',
};

/** The layers (docs/architecture.md), by folder. */
const L = {
  wire: '^bridge/connection/',
  bridge: '^bridge/',
  apiContract: '^server/api-contract/',
  proxySpec: '^server/proxy-spec/',
  filter: '^server/docker-api-filter/',
  server: '^server/(src|docker|deploy)/',
  web: '^server/web/',
  dom: '^renderer/dom/',
  emulator: '^test/emulator/',
  desktop: '^(main/|renderer/(?!dom/))',
  tooling: '^(test/(?!emulator/)|bench/|scripts/)',
};
const ours = '^(bridge|server|main|renderer|test|bench|scripts)/';
const TESTS = '\\.test\\.ts$';

/** What the server may use of the bridge package: the wire contract and the Ollama API's routes. */
const BRIDGE_FOR_SERVER = '^bridge/(connection/|ingress/ollama-routes\\.ts$|ingress/request-target\\.ts$|shutdown-signals\\.ts$|package\\.json$)';

const relativeAcrossPackages = Object.entries(PACKAGES).map(([name, path]) => ({
  name: `relative-import-out-of-${name}`,
  comment: `a file of the package ${name === 'cloudtolocalllm' ? 'cloudtolocalllm (the root: desktop, test, bench, scripts)' : `@cloudtolocalllm/${name}`} imports another package's file by a relative path; import it by its package name (@cloudtolocalllm/...), through what that package exports`,
  severity: 'error',
  from: { path },
  to: { dependencyTypes: ['local'], dependencyTypesNot: ['aliased'], pathNot: path },
}));

/** `from` may import nothing of ours outside `allowed` (besides itself). */
function only(name, comment, from, allowed, options = {}) {
  return {
    name,
    comment,
    severity: 'error',
    from: { path: from, ...(options.tests === false ? {} : { pathNot: TESTS }) },
    to: { path: ours, pathNot: [from, ...allowed] },
  };
}

module.exports = {
  forbidden: [
    ...relativeAcrossPackages,
    only('wire-contract-stands-alone', 'bridge/connection is the tunnel\'s wire contract, shared by the bridge and the streaming proxy: it imports nothing of ours but itself (and the bridge\'s package.json, for its version)', L.wire, ['^bridge/package\\.json$'], { tests: false }),
    only('api-contract-stands-alone', 'the HTTP API contract (@cloudtolocalllm/api-contract) is types and constants that the server, the web client and the desktop share: it imports nothing of ours', L.apiContract, [], { tests: false }),
    {
      name: 'api-contract-runs-anywhere',
      comment: 'the HTTP API contract is loaded by browsers (the web client) and Node alike: no Node module and no npm package in it',
      severity: 'error',
      from: { path: L.apiContract },
      to: { dependencyTypes: ['core', 'npm', 'npm-dev', 'npm-no-pkg', 'npm-optional', 'npm-peer', 'npm-unknown'] },
    },
    only('proxy-spec-stands-alone', 'the proxy spec (@cloudtolocalllm/proxy-spec) says what a proxy container and its network may look like, for the runtime and the Docker API filter alike: it imports nothing of ours', L.proxySpec, []),
    only('bridge-on-wire-contract', 'the bridge (@cloudtolocalllm/bridge) is built on its wire contract only: no server, desktop, test or tool code in it (its tests may use the Ollama emulator)', L.bridge, []),
    only('server-on-contracts', 'the server (@cloudtolocalllm/server) uses of the other packages only the wire contract (bridge/connection, the Ollama routes, the shutdown signals), the HTTP API contract and the proxy spec; never the desktop, the Docker API filter, tests or tools (its tests may)', L.server, [BRIDGE_FOR_SERVER, L.apiContract, L.proxySpec]),
    only('web-client-on-api-contract', 'the web client (server/web) runs in browsers: it uses the HTTP API contract and the DOM helpers, nothing of the server\'s Node code', L.web, [L.apiContract, L.dom]),
    only('filter-on-proxy-spec', 'the Docker API filter (@cloudtolocalllm/docker-api-filter) enforces the proxy spec and uses nothing else of ours: it must not trust the server it guards', L.filter, [L.proxySpec]),
    only('dom-helpers-stand-alone', 'the DOM helpers (@cloudtolocalllm/dom) are shared by two front ends and import nothing of ours', L.dom, []),
    only('emulator-stands-alone', 'the Ollama emulator (@cloudtolocalllm/ollama-emulator) behaves as docs/ollama-api.md says and imports nothing of ours', L.emulator, []),
    {
      name: 'desktop-on-bridge-and-api-contract',
      comment: 'the desktop app (main/, renderer/) ships the bridge and reads the HTTP API contract; the server never ships in it (main/local-stack.ts, bundled for runs from source only and left out by electron-builder.yml, is the one file that starts the server), nor tests, bench or scripts',
      severity: 'error',
      from: { path: L.desktop, pathNot: [TESTS, '^main/local-stack\\.ts$'] },
      to: { path: ours, pathNot: [L.desktop, L.bridge, L.apiContract, L.dom] },
    },
    {
      name: 'local-stack-starts-the-server-only',
      comment: 'main/local-stack.ts may use the server package (and the desktop\'s own modules) and nothing else',
      severity: 'error',
      from: { path: '^main/local-stack\\.ts$' },
      to: { path: ours, pathNot: [L.desktop, '^server/src/'] },
    },
    {
      name: 'nothing-imports-tooling',
      comment: 'test/, bench/ and scripts/ may use every package; no package may use them (a test helper in a package would ship)',
      severity: 'error',
      from: { path: ours, pathNot: [L.tooling, TESTS] },
      to: { path: L.tooling },
    },
    {
      name: 'declared-dependencies-only',
      comment: 'an npm package is imported that the nearest package.json does not declare: it works only because npm hoisted it; declare it in that package.json',
      severity: 'error',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'resolvable-imports-only',
      comment: 'this import resolves to no file: a package export or a path that does not exist',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true, dependencyTypesNot: ['core'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|test-artifacts)/|^server/deploy/build/|^tools/' },
    // Type-only imports count: a desktop file that imports a server type depends on the server.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    parser: 'tsc',
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default'],
      extensions: ['.ts', '.js', '.mjs', '.json'],
    },
    reporterOptions: { text: { highlightFocused: false } },
  },
};
