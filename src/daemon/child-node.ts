import { spawn, type ChildProcess } from 'node:child_process'
import { open } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The CLI entry point, so a daemon can be run as a child process of mesh or experiment. */
export const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/coldfusiond.js')

/** A `coldfusiond start` child process; `exit` is set once it has ended. */
export interface ChildNode {
  home: string
  child?: ChildProcess
  exit?: number | null
}

/** Start `coldfusiond start --home H --rounds R`, its output appended to H/node.log. */
export async function spawnNode(n: ChildNode, rounds: number, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const log = await open(join(n.home, 'node.log'), 'a')
  try {
    n.child = spawn(process.execPath, [BIN, 'start', '--home', n.home, '--rounds', String(rounds)], { stdio: ['ignore', log.fd, log.fd], env })
  } finally {
    await log.close()
  }
  n.child.on('exit', (code) => {
    n.exit = code
  })
}

/** SIGTERM every running node (a clean stop), SIGKILL after 10 s; resolves when all have exited. */
export async function stopNodes(nodes: readonly ChildNode[]): Promise<void> {
  await Promise.all(
    nodes.map(async (n) => {
      const c = n.child
      if (!c || n.exit !== undefined) return
      const exited = new Promise<void>((r) => c.once('exit', () => r()))
      c.kill('SIGTERM')
      const t = setTimeout(() => c.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(t)
    }),
  )
}
