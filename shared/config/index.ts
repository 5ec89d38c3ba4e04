/** Configuration files: schema, sources (file, environment, flags) and resolution. */
export { agentSchema, aggregatorSchema, SCHEMAS, type AgentConfig, type AggregatorConfig, type ConfigOf, type Kind, type TargetConfig } from './schema.js';
export { FLAG_KEYS, Layer, envLayer, envName, flagLayer, type FlagKey } from './flags.js';
export { ConfigError, DEFAULT_CONFIG_DIR, defaultConfigPath, findConfigFile, parseConfigText, readConfigFile, resolveConfig, type ConfigFile, type Resolved, type ResolveOptions, type Sources } from './resolve.js';
export { defaultValues, defaultYaml, jsonSchema, jsonSchemaText } from './defaults.js';
