// The replica's Redis connections, and its liveness key, which tells other replicas that streams
// this replica produces are still being produced.
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'

export interface SharedRedis {
  /** Commands. */
  client: Redis
  /** Pub/sub only (a subscribed connection can run no other command). */
  subscriber: Redis
  replicaId: string
  isAlive(replicaId: string): Promise<boolean>
  ping(): Promise<boolean>
  close(): Promise<void>
}

const ALIVE_MS = 3_000

export async function connectRedis(url: string): Promise<SharedRedis> {
  const options = { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: true }
  const client = new Redis(url, options)
  const subscriber = new Redis(url, options)
  await Promise.all([client.connect(), subscriber.connect()])
  const replicaId = randomUUID()
  const aliveKey = (id: string) => `gw:replica:${id}`
  const beat = () => client.set(aliveKey(replicaId), '1', 'PX', ALIVE_MS).catch(() => {})
  await beat()
  const timer = setInterval(() => void beat(), ALIVE_MS / 3).unref()
  return {
    client,
    subscriber,
    replicaId,
    isAlive: async (id) => id === replicaId || (await client.exists(aliveKey(id))) === 1,
    ping: async () => (await client.ping().catch(() => 'down')) === 'PONG',
    async close() {
      clearInterval(timer)
      await client.del(aliveKey(replicaId)).catch(() => {})
      client.disconnect()
      subscriber.disconnect()
    }
  }
}
