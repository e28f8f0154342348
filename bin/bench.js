#!/usr/bin/env node
// `npm run bench`: the performance benchmarks (src/bench/main.ts). Needs Node.js 22 (npm run uses the one in node_modules).
const major = Number(process.versions.node.split('.')[0])
if (major < 22) {
  process.stderr.write(`the benchmarks need Node.js 22 or newer (this is ${process.version}); run them with \`npm run bench\`.\n`)
  process.exit(2)
}
try {
  const { main } = await import('../dist/src/bench/main.js')
  process.exitCode = await main(process.argv.slice(2))
} catch (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/bench')) {
    process.stderr.write('the benchmarks are not built yet: run `npm run build` first (npm run bench builds too).\n')
    process.exit(2)
  }
  process.stderr.write(`${err && err.message ? err.message : String(err)}\n`)
  process.exit(1)
}
