/**
 * The public API of each entry point of the built package, written out here on purpose: a name
 * added to or removed from an export list fails this test until the list below is edited too, so
 * that every change of the public surface is a deliberate one (STYLE.md, "An export list you
 * chose"). For each entry point:
 * - the names it exports at run time (`import()` of dist/), and the type-only names, which exist
 *   only in its declarations (read with the TypeScript compiler API);
 * - every type named in the signature of something it exports (a function's parameters and
 *   result, a class's constructor, public and protected members and heritage, an interface's
 *   members, a type alias) is exported from the same entry point too, so that a consumer can name
 *   what a public function takes or returns (members marked `@internal` are not public API and
 *   are skipped; private ones are not in the declarations);
 * - its source file names every export (no `export *`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const DIST = join(ROOT, 'dist');

interface EntryPoint {
  /** The subpath in package.json "exports". */
  subpath: string;
  /** Its files in dist/ (the package.json "exports" targets). */
  js: string;
  dts: string;
  /** Names that exist at run time (classes, functions, constants), sorted. */
  values: readonly string[];
  /** Names that exist in the declarations only (interfaces, type aliases), sorted. */
  types: readonly string[];
  /** Types the signature walk must reach (default: BaseLockOptions and LockOptions). */
  probe?: readonly string[];
}

const ROOT_ENTRY: EntryPoint = {
  subpath: '.',
  js: 'index.js',
  dts: 'index.d.ts',
  values: [
    'BackendDefinition',
    'BaseLock',
    'ClusterLock',
    'ClusterLockClient',
    'ClusterLockHub',
    'DEFAULT_LEADER_EXPIRE',
    'DEFAULT_LOCK_OPTIONS',
    'DriverMissingError',
    'EtcdLock',
    'InjectLeaderService',
    'InjectLockService',
    'LEADER_ONLY_METADATA',
    'LOCKED_METADATA',
    'LOCK_CHANNELS',
    'LOCK_EVENT_TYPES',
    'LeaderElection',
    'LeaderElectionModule',
    'LeaderOnly',
    'LeaderService',
    'Lock',
    'LockAbortedError',
    'LockBackendError',
    'LockBusyError',
    'LockError',
    'LockErrorInterceptor',
    'LockGraphQLError',
    'LockInterceptor',
    'LockLostError',
    'LockManager',
    'LockNotHeldError',
    'LockReleaseError',
    'LockService',
    'LockTimeoutError',
    'Locked',
    'MCLock',
    'MemcachedLock',
    'MemoryLock',
    'MemoryStore',
    'MultiLock',
    'MultiLockError',
    'OTEL_NAMES',
    'PostgresLock',
    'ReadWriteLock',
    'ReadWriteSide',
    'RedisLock',
    'RedisQuorum',
    'RedlockLock',
    'ReplicaAckError',
    'SHERLOCK_EVENTS',
    'Semaphore',
    'SherlockHealthIndicator',
    'SherlockModule',
    'ThreadLock',
    'ThreadLockTable',
    'UnsupportedFeatureError',
    'ZooKeeperClient',
    'ZooKeeperLock',
    'backends',
    'configure',
    'createTestingLockManager',
    'createTestingLockService',
    'currentLock',
    'currentMultiLock',
    'describeLockError',
    'describeLockEvent',
    'getConfiguration',
    'getLeaderServiceToken',
    'getLockServiceToken',
    'heldLocks',
    'instrumentOpenTelemetry',
    'lockEvents',
    'resetConfiguration',
    'shutdown',
    'waitForReplicas',
  ],
  types: [
    'AcquireOptions',
    'AcquireResult',
    'AttemptOutcome',
    'BackendCapabilities',
    'BackendDeclaration',
    'BackendHealth',
    'BackendName',
    'BackendRegistration',
    'Backends',
    'BaseLockOptions',
    'ClientClass',
    'ClosableResponse',
    'ClusterLockOptions',
    'ConfigureOptions',
    'ConnectionSettings',
    'DistributedLock',
    'ElectionBackend',
    'EtcdLockOptions',
    'ExpiryLimits',
    'HandOff',
    'InspectionBackend',
    'LeaderElectionEvents',
    'LeaderElectionModuleOptions',
    'LeaderElectionOptions',
    'LeaderInfo',
    'LeaderMetadataValue',
    'LeaderRecord',
    'Leadership',
    'LeadershipEndedEvent',
    'ListOptions',
    'ListTarget',
    'ListedLock',
    'LockAcquiredEvent',
    'LockBackend',
    'LockBusyEvent',
    'LockClass',
    'LockControls',
    'LockErrorCode',
    'LockErrorContext',
    'LockErrorDescription',
    'LockErrorMapper',
    'LockErrorMapping',
    'LockErrorMappingOptions',
    'LockEvent',
    'LockEventBase',
    'LockEventListener',
    'LockEventMap',
    'LockEventType',
    'LockEvents',
    'LockExtendFailedEvent',
    'LockExtendedEvent',
    'LockFeature',
    'LockForceReleasedEvent',
    'LockHolder',
    'LockHubChild',
    'LockInfo',
    'LockLostEvent',
    'LockLostReason',
    'LockManagerOptions',
    'LockName',
    'LockOptions',
    'LockReleaseReason',
    'LockReleasedEvent',
    'LockServiceAcquireOptions',
    'LockTarget',
    'LockTimeoutEvent',
    'LockWaitingEvent',
    'LockedDecorator',
    'LockedDecoratorOptions',
    'LockedNameMismatch',
    'LockedOptions',
    'LockedPrimitiveOptions',
    'LockedSkipNeedsUndefined',
    'LockedSkips',
    'LockedTarget',
    'MemcachedLockOptions',
    'MemoryLockOptions',
    'MemoryTicket',
    'MultiLockFailure',
    'OnBusy',
    'OpenTelemetryInstrumentation',
    'OpenTelemetryOptions',
    'PgPoolLike',
    'PingDetails',
    'PostgresLockOptions',
    'PushedGrant',
    'ReadWriteBackend',
    'ReadWriteMode',
    'ReadWriteState',
    'ReadWriteTarget',
    'RedisLockOptions',
    'RedisQuorumOptions',
    'RedlockLockOptions',
    'ResolvedLockOptions',
    'SemaphoreBackend',
    'SemaphoreOptions',
    'SemaphoreTarget',
    'SentinelAddress',
    'SherlockBackends',
    'SherlockConfiguration',
    'SherlockEmittedEvent',
    'SherlockHealthOptions',
    'SherlockHealthResult',
    'SherlockModuleAsyncOptions',
    'SherlockModuleOptions',
    'SherlockModuleRegistration',
    'SherlockOptionsFactory',
    'ShutdownReport',
    'StoredLock',
    'TestingLockManager',
    'TestingLockManagerOptions',
    'TestingLockService',
    'TestingLockServiceOptions',
    'ThreadLockOptions',
    'ThreadLockState',
    'ThreadLockTableOptions',
    'WaitForReplicas',
    'ZooKeeperClientOptions',
    'ZooKeeperLockOptions',
  ],
};

const CORE_ENTRY: EntryPoint = {
  subpath: './core',
  js: 'sherlock.js',
  dts: 'sherlock.d.ts',
  values: [
    'BackendDefinition',
    'BaseLock',
    'ClusterLock',
    'ClusterLockClient',
    'ClusterLockHub',
    'DEFAULT_LEADER_EXPIRE',
    'DEFAULT_LOCK_OPTIONS',
    'DriverMissingError',
    'EtcdLock',
    'LOCK_CHANNELS',
    'LOCK_EVENT_TYPES',
    'LeaderElection',
    'Lock',
    'LockAbortedError',
    'LockBackendError',
    'LockBusyError',
    'LockError',
    'LockLostError',
    'LockManager',
    'LockNotHeldError',
    'LockReleaseError',
    'LockTimeoutError',
    'MCLock',
    'MemcachedLock',
    'MemoryLock',
    'MemoryStore',
    'MultiLock',
    'MultiLockError',
    'OTEL_NAMES',
    'PostgresLock',
    'ReadWriteLock',
    'ReadWriteSide',
    'RedisLock',
    'RedisQuorum',
    'RedlockLock',
    'ReplicaAckError',
    'Semaphore',
    'ThreadLock',
    'ThreadLockTable',
    'UnsupportedFeatureError',
    'ZooKeeperClient',
    'ZooKeeperLock',
    'backends',
    'configure',
    'createTestingLockManager',
    'getConfiguration',
    'heldLocks',
    'instrumentOpenTelemetry',
    'lockEvents',
    'resetConfiguration',
    'shutdown',
    'waitForReplicas',
  ],
  types: [
    'AcquireOptions',
    'AcquireResult',
    'AttemptOutcome',
    'BackendCapabilities',
    'BackendDeclaration',
    'BackendHealth',
    'BackendName',
    'BackendRegistration',
    'Backends',
    'BaseLockOptions',
    'ClientClass',
    'ClusterLockOptions',
    'ConfigureOptions',
    'ConnectionSettings',
    'DistributedLock',
    'ElectionBackend',
    'EtcdLockOptions',
    'ExpiryLimits',
    'HandOff',
    'InspectionBackend',
    'LeaderElectionEvents',
    'LeaderElectionOptions',
    'LeaderInfo',
    'LeaderMetadataValue',
    'LeaderRecord',
    'Leadership',
    'LeadershipEndedEvent',
    'ListOptions',
    'ListTarget',
    'ListedLock',
    'LockAcquiredEvent',
    'LockBackend',
    'LockBusyEvent',
    'LockClass',
    'LockControls',
    'LockEvent',
    'LockEventBase',
    'LockEventListener',
    'LockEventMap',
    'LockEventType',
    'LockEvents',
    'LockExtendFailedEvent',
    'LockExtendedEvent',
    'LockFeature',
    'LockForceReleasedEvent',
    'LockHolder',
    'LockHubChild',
    'LockInfo',
    'LockLostEvent',
    'LockLostReason',
    'LockManagerOptions',
    'LockOptions',
    'LockReleaseReason',
    'LockReleasedEvent',
    'LockTarget',
    'LockTimeoutEvent',
    'LockWaitingEvent',
    'MemcachedLockOptions',
    'MemoryLockOptions',
    'MemoryTicket',
    'MultiLockFailure',
    'OpenTelemetryInstrumentation',
    'OpenTelemetryOptions',
    'PgPoolLike',
    'PingDetails',
    'PostgresLockOptions',
    'PushedGrant',
    'ReadWriteBackend',
    'ReadWriteMode',
    'ReadWriteState',
    'ReadWriteTarget',
    'RedisLockOptions',
    'RedisQuorumOptions',
    'RedlockLockOptions',
    'ResolvedLockOptions',
    'SemaphoreBackend',
    'SemaphoreOptions',
    'SemaphoreTarget',
    'SentinelAddress',
    'SherlockBackends',
    'SherlockConfiguration',
    'ShutdownReport',
    'StoredLock',
    'TestingLockManager',
    'TestingLockManagerOptions',
    'ThreadLockOptions',
    'ThreadLockState',
    'ThreadLockTableOptions',
    'WaitForReplicas',
    'ZooKeeperClientOptions',
    'ZooKeeperLockOptions',
  ],
};

const BACKEND_ENTRY: EntryPoint = {
  subpath: './backend',
  js: 'backend.js',
  dts: 'backend.d.ts',
  values: [
    'BackendDefinition',
    'BaseLock',
    'FALLBACK_POLL',
    'backends',
    'loadDriver',
    'parseConnection',
    'sleepBeforeNextAttempt',
  ],
  types: [
    'AcquireOptions',
    'AcquireResult',
    'AttemptOutcome',
    'BackendCapabilities',
    'BackendDeclaration',
    'BackendHealth',
    'BackendName',
    'BackendRegistration',
    'Backends',
    'BaseLockOptions',
    'ClientClass',
    'ConnectionSettings',
    'DistributedLock',
    'ElectionBackend',
    'ExpiryLimits',
    'HandOff',
    'InspectionBackend',
    'LeaderElection',
    'LeaderElectionEvents',
    'LeaderElectionOptions',
    'LeaderInfo',
    'LeaderMetadataValue',
    'LeaderRecord',
    'Leadership',
    'LeadershipEndedEvent',
    'ListOptions',
    'ListTarget',
    'ListedLock',
    'LockAcquiredEvent',
    'LockBackend',
    'LockBusyEvent',
    'LockClass',
    'LockError',
    'LockEvent',
    'LockEventBase',
    'LockEventListener',
    'LockEventMap',
    'LockEventType',
    'LockExtendFailedEvent',
    'LockExtendedEvent',
    'LockForceReleasedEvent',
    'LockHolder',
    'LockInfo',
    'LockLostError',
    'LockLostEvent',
    'LockLostReason',
    'LockManager',
    'LockManagerOptions',
    'LockOptions',
    'LockReleasedEvent',
    'LockTarget',
    'LockTimeoutError',
    'LockTimeoutEvent',
    'LockWaitingEvent',
    'MultiLock',
    'ParsedConnection',
    'PingDetails',
    'PushedGrant',
    'ReadWriteBackend',
    'ReadWriteLock',
    'ReadWriteMode',
    'ReadWriteSide',
    'ReadWriteState',
    'ReadWriteTarget',
    'ResolvedLockOptions',
    'Semaphore',
    'SemaphoreBackend',
    'SemaphoreOptions',
    'SemaphoreTarget',
    'SherlockBackends',
    'ShutdownReport',
    'StoredLock',
    'WaitFacts',
  ],
};

const TESTING_ENTRY: EntryPoint = {
  subpath: './testing',
  js: 'testing.js',
  dts: 'testing.d.ts',
  values: ['CONTRACT_GROUPS', 'runContractSuite'],
  types: [
    'BackendCapabilities',
    'BackendDefinition',
    'ClientClass',
    'ConnectionSettings',
    'ContractGroup',
    'ContractRunner',
    'ContractSubject',
    'ContractSuiteOptions',
    'ExpiryLimits',
    'LockClass',
    'LockOnServer',
    'LockOptions',
    'ServerInspector',
  ],
  probe: ['ContractSubject', 'LockOptions'],
};

const ENTRY_POINTS = [ROOT_ENTRY, CORE_ENTRY, BACKEND_ENTRY, TESTING_ENTRY];

/**
 * Types named in a public signature of an entry point but not exported from it, as
 * `'<subpath> <TypeName>'`. Each one is a gap to fix in lib/ (export the type from that entry
 * point, or stop naming it in a public signature); then remove it from this list: the test
 * fails while a gap listed here no longer exists, so the list cannot go stale.
 */
const KNOWN_GAPS: readonly string[] = [];

/** Source files whose exports are all named (no `export *`, no `export * as ns`). */
const BARRELS = [
  'lib/index.ts',
  'lib/sherlock.ts',
  'lib/backend.ts',
  'lib/nest/index.ts',
  'lib/testing.ts',
];

const sorted = (names: Iterable<string>): string[] => [...names].sort();

// -------------------------------------------------------------------------------------------------
// The declarations, read with the TypeScript compiler API.

const program = ts.createProgram(
  ENTRY_POINTS.map((entry) => join(DIST, entry.dts)),
  {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules', '@types')],
  },
);
const checker = program.getTypeChecker();

const resolveAlias = (symbol: ts.Symbol): ts.Symbol =>
  symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;

/** The exported symbols of an entry point's declaration file. */
function exportsOf(entry: EntryPoint): ts.Symbol[] {
  const file = program.getSourceFile(join(DIST, entry.dts));
  if (!file) throw new Error(`dist/${entry.dts} is not in the program: run npm run build`);
  const module = checker.getSymbolAtLocation(file);
  if (!module) throw new Error(`dist/${entry.dts} is not a module`);
  return checker.getExportsOfModule(module);
}

const isOurs = (node: ts.Node): boolean => node.getSourceFile().fileName.startsWith(`${DIST}/`);

/** Marked `@internal` in its JSDoc: visible in the .d.ts, but not part of the public API. */
const isInternal = (node: ts.Node): boolean =>
  ts.getJSDocTags(node).some((tag) => tag.tagName.text === 'internal');

const isHiddenMember = (member: ts.ClassElement | ts.TypeElement): boolean =>
  (ts.canHaveModifiers(member) &&
    (ts.getCombinedModifierFlags(member as ts.Declaration) & ts.ModifierFlags.Private) !== 0) ||
  (member.name !== undefined && ts.isPrivateIdentifier(member.name)) ||
  isInternal(member);

/** The public parts of a declaration, each with a label saying where it is. */
function publicParts(exportName: string, declaration: ts.Declaration): [string, ts.Node][] {
  if (!ts.isClassDeclaration(declaration) && !ts.isInterfaceDeclaration(declaration)) {
    return [[exportName, declaration]];
  }
  const parts: [string, ts.Node][] = [];
  for (const clause of declaration.heritageClauses ?? []) {
    const kind = clause.token === ts.SyntaxKind.ExtendsKeyword ? 'extends' : 'implements';
    parts.push([`${exportName} (${kind})`, clause]);
  }
  for (const parameter of declaration.typeParameters ?? []) {
    parts.push([`${exportName}<${parameter.name.text}>`, parameter]);
  }
  const members: readonly (ts.ClassElement | ts.TypeElement)[] = declaration.members;
  for (const member of members) {
    if (isHiddenMember(member)) continue;
    const name = ts.isConstructorDeclaration(member)
      ? 'constructor'
      : member.name
        ? member.name.getText()
        : ts.isIndexSignatureDeclaration(member)
          ? '[index]'
          : '()';
    parts.push([`${exportName}.${name}`, member]);
  }
  return parts;
}

/** The names of the types and values that `node` refers to in type positions. */
function typeNamesIn(node: ts.Node): ts.Identifier[] {
  const found: ts.Identifier[] = [];
  const rightmost = (name: ts.EntityName | ts.Expression): ts.Node =>
    ts.isQualifiedName(name) ? name.right : ts.isPropertyAccessExpression(name) ? name.name : name;
  const visit = (child: ts.Node): void => {
    let name: ts.Node | undefined;
    if (ts.isTypeReferenceNode(child)) name = rightmost(child.typeName);
    else if (ts.isExpressionWithTypeArguments(child)) name = rightmost(child.expression);
    else if (ts.isImportTypeNode(child) && child.qualifier) name = rightmost(child.qualifier);
    else if (ts.isTypeQueryNode(child)) name = rightmost(child.exprName);
    if (name && ts.isIdentifier(name)) found.push(name);
    ts.forEachChild(child, visit);
  };
  visit(node);
  return found;
}

interface SignatureCheck {
  /** Referenced but not exported: type name -> where it is referenced. */
  gaps: Map<string, Set<string>>;
  /** Every type of this package that the signatures reference (exported or not). */
  referenced: Set<string>;
  /** References the checker could not resolve (a broken declaration or program). */
  unresolved: string[];
}

/** Walks the public declarations of an entry point for types it names but does not export. */
function checkSignatures(entry: EntryPoint): SignatureCheck {
  const exported = exportsOf(entry);
  const exportedSymbols = new Set(exported.map(resolveAlias));
  const result: SignatureCheck = { gaps: new Map(), referenced: new Set(), unresolved: [] };
  for (const symbol of exported) {
    for (const declaration of resolveAlias(symbol).declarations ?? []) {
      if (!isOurs(declaration) || isInternal(declaration)) continue;
      for (const [where, part] of publicParts(symbol.name, declaration)) {
        for (const name of typeNamesIn(part)) {
          const target = checker.getSymbolAtLocation(name);
          if (!target) {
            result.unresolved.push(`${name.text} in ${where}`);
            continue;
          }
          const resolved = resolveAlias(target);
          if (resolved.flags & ts.SymbolFlags.TypeParameter) continue;
          // The language's and other packages' types (Promise, AbortSignal, DynamicModule, ...).
          if (!(resolved.declarations ?? []).some(isOurs)) continue;
          result.referenced.add(resolved.name);
          if (exportedSymbols.has(resolved)) continue;
          const sites = result.gaps.get(resolved.name) ?? new Set<string>();
          sites.add(where);
          result.gaps.set(resolved.name, sites);
        }
      }
    }
  }
  return result;
}

// -------------------------------------------------------------------------------------------------

describe('package.json "exports"', () => {
  it('has exactly the entry points listed here, and package.json', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      exports: Record<string, unknown>;
    };
    const expected: Record<string, unknown> = { './package.json': './package.json' };
    for (const entry of ENTRY_POINTS) {
      expected[entry.subpath] = { types: `./dist/${entry.dts}`, default: `./dist/${entry.js}` };
    }
    expect(pkg.exports).toEqual(expected);
  });
});

describe.each(ENTRY_POINTS)('the exports of $subpath', (entry) => {
  it('are listed here sorted, values apart from types, with no name twice', () => {
    expect(entry.values).toEqual(sorted(entry.values));
    expect(entry.types).toEqual(sorted(entry.types));
    expect(entry.values.filter((name) => entry.types.includes(name))).toEqual([]);
  });

  it(`at run time: the values listed here (dist/${entry.js})`, async () => {
    const module = (await import(pathToFileURL(join(DIST, entry.js)).href)) as object;
    expect(sorted(Object.keys(module))).toEqual(entry.values);
  });

  it(`in the declarations: the values, and the types listed here (dist/${entry.dts})`, async () => {
    const declared = exportsOf(entry).map((symbol) => symbol.name);
    const module = (await import(pathToFileURL(join(DIST, entry.js)).href)) as object;
    const runtime = Object.keys(module);
    // Every value is declared (a typed consumer can import it) ...
    expect(runtime.filter((name) => !declared.includes(name))).toEqual([]);
    // ... and the other declared names are the type-only ones.
    expect(sorted(declared.filter((name) => !runtime.includes(name)))).toEqual(entry.types);
  });

  it('name every type their public signatures use (except the KNOWN_GAPS)', () => {
    const { gaps, referenced, unresolved } = checkSignatures(entry);
    expect(unresolved).toEqual([]);
    // The walk does reach the signatures (an empty result below would prove nothing otherwise).
    expect([...referenced]).toEqual(
      expect.arrayContaining([...(entry.probe ?? ['BaseLockOptions', 'LockOptions'])]),
    );
    const found = sorted([...gaps.keys()].map((name) => `${entry.subpath} ${name}`));
    const detail = [...gaps]
      .map(([name, sites]) => `${name}, referenced by ${[...sites].join(', ')}`)
      .join('\n');
    const known = sorted(KNOWN_GAPS.filter((gap) => gap.startsWith(`${entry.subpath} `)));
    expect(found, `types used but not exported by ${entry.subpath}:\n${detail}`).toEqual(known);
  });
});

describe.each(BARRELS)('%s', (file) => {
  it('names every export (no `export *`)', () => {
    const source = ts.createSourceFile(
      file,
      readFileSync(join(ROOT, file), 'utf8'),
      ts.ScriptTarget.ES2022,
      true,
    );
    const reExports = source.statements.filter(ts.isExportDeclaration);
    expect(reExports.length, 'it re-exports something').toBeGreaterThan(0);
    const star = reExports
      .filter((node) => !node.exportClause || ts.isNamespaceExport(node.exportClause))
      .map((node) => node.getText());
    expect(star).toEqual([]);
  });
});
