#!/usr/bin/env node
// coldfusiond command-line entry point. The libp2p stack needs Node.js 22 or newer.
const major = Number(process.versions.node.split('.')[0])
if (major < 22) {
  process.stderr.write(
    `coldfusiond needs Node.js 22 or newer (this is ${process.version}).\n` +
      'Inside the project, `npx coldfusiond ...` and `npm run ...` use the Node.js 22 that `npm install` put in node_modules.\n',
  )
  process.exit(2)
}
try {
  const { main } = await import('../dist/src/cli/main.js')
  await main(process.argv)
} catch (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli')) {
    process.stderr.write('coldfusiond is not built yet: run `npm install` (or `npm run build`) in the project first.\n')
    process.exit(2)
  }
  throw err
}
