export { startSimulator } from './server.js'
export type { Simulator, SimulatorLastRequest, SimulatorStats, StartSimulatorOptions } from './server.js'
export { simulatorEnvSchema, simulatorOptionsFrom } from './options.js'
export type { SimulatorEnv, SimulatorOptions } from './options.js'
