// Piscina's entry point for a chat turn: the task is built once per worker from its settings.
import { workerData } from 'node:worker_threads'
import type { WorkerSettings } from '../src/protocol.js'
import { createChatTask } from './chat-task.js'

export default createChatTask(workerData as WorkerSettings)
