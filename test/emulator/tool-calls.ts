// Tool calls in /api/chat: a request with `tools` whose last message is the user's gets one call of
// its first tool, as a model that decides to use a tool answers (message.content "" and
// message.tool_calls [{function: {name, arguments}}]). A tool result (role "tool") last, or no
// tools, gets text as usual. Arguments are deterministic: each required parameter gets a value of
// its declared type, so a client's parsing of them is tested.

import { isObject, type JsonObject } from './json-body.js';

export interface ToolCall {
  function: { name: string; arguments: Record<string, unknown> };
}

function exampleValue(schema: unknown): unknown {
  const type = isObject(schema) ? schema['type'] : undefined;
  if (type === 'number' || type === 'integer') return 1;
  if (type === 'boolean') return true;
  if (type === 'array') return [];
  if (type === 'object') return {};
  const values = isObject(schema) ? schema['enum'] : undefined;
  return Array.isArray(values) && values.length > 0 ? values[0] : 'tok0';
}

/** The call a chat request gets, or undefined when it gets text. */
export function toolCallFor(body: JsonObject): ToolCall | undefined {
  const tools = body['tools'];
  const messages = body['messages'];
  if (!Array.isArray(tools) || tools.length === 0 || !Array.isArray(messages)) return undefined;
  const last = messages[messages.length - 1];
  if (!isObject(last) || last['role'] !== 'user') return undefined;
  const fn = isObject(tools[0]) ? tools[0]['function'] : undefined;
  if (!isObject(fn) || typeof fn['name'] !== 'string') return undefined;
  const parameters = isObject(fn['parameters']) ? fn['parameters'] : {};
  const properties = isObject(parameters['properties']) ? parameters['properties'] : {};
  const required = Array.isArray(parameters['required']) ? parameters['required'].filter((r): r is string => typeof r === 'string') : [];
  const args: Record<string, unknown> = {};
  for (const name of required) args[name] = exampleValue(properties[name]);
  return { function: { name: fn['name'], arguments: args } };
}
