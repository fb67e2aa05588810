/**
 * Ready-to-paste settings for the apps people connect (issue 9), from the endpoint's Ollama base
 * URL and a key. Pure: the Settings window shows them, test/desktop/client-snippets.test.ts runs
 * the JavaScript ones with the real clients, and docs/clients.md lists the same settings.
 */

export interface Snippet {
  id: 'curl' | 'open-webui' | 'openai-python' | 'openai-js' | 'ollama-js' | 'langchain-python' | 'langchain-js' | 'continue';
  title: string;
  text: string;
}

/** The OpenAI-compatible base URL of an endpoint whose Ollama base URL is `ollamaBase`. */
export function openAiBase(ollamaBase: string): string {
  return `${ollamaBase.replace(/\/+$/, '')}/v1`;
}

/** A string literal for JavaScript and Python alike (JSON's escapes are valid in both). */
const literal = (s: string): string => JSON.stringify(s);
/** A single-quoted shell word. */
const shellWord = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export function clientSnippets(ollamaBaseUrl: string, key: string, model = 'llama3.2'): Snippet[] {
  const ollama = ollamaBaseUrl.replace(/\/+$/, '');
  const openai = openAiBase(ollama);
  const auth = `Authorization: Bearer ${key}`;
  return [
    {
      id: 'curl',
      title: 'curl',
      text:
        `curl -H ${shellWord(auth)} ${shellWord(`${ollama}/api/tags`)}\n` +
        `curl -H ${shellWord(auth)} ${shellWord(`${ollama}/api/generate`)} -d ${shellWord(JSON.stringify({ model, prompt: 'Why is the sky blue?', stream: false }))}`,
    },
    {
      id: 'open-webui',
      title: 'Open WebUI',
      text: `Settings → Connections → OpenAI API → add a connection:\n  URL: ${openai}\n  Key: ${key}\n(Its Ollama connection sends no key: use the OpenAI one.)`,
    },
    {
      id: 'openai-python',
      title: 'OpenAI SDK (Python)',
      text:
        `from openai import OpenAI\n\n` +
        `client = OpenAI(base_url=${literal(openai)}, api_key=${literal(key)})\n` +
        `reply = client.chat.completions.create(model=${literal(model)}, messages=[{"role": "user", "content": "Hello"}])\n` +
        `print(reply.choices[0].message.content)`,
    },
    {
      id: 'openai-js',
      title: 'OpenAI SDK (JavaScript)',
      text:
        `import OpenAI from 'openai';\n\n` +
        `const client = new OpenAI({ baseURL: ${literal(openai)}, apiKey: ${literal(key)} });\n` +
        `const models = await client.models.list();\n` +
        `console.log(models.data.map((m) => m.id));`,
    },
    {
      id: 'ollama-js',
      title: 'Ollama JavaScript client',
      text:
        `import { Ollama } from 'ollama';\n\n` +
        `const ollama = new Ollama({ host: ${literal(ollama)}, headers: { Authorization: ${literal(`Bearer ${key}`)} } });\n` +
        `const { models } = await ollama.list();\n` +
        `console.log(models.map((m) => m.name));`,
    },
    {
      id: 'langchain-python',
      title: 'LangChain (Python)',
      text:
        `from langchain_openai import ChatOpenAI\n\n` +
        `llm = ChatOpenAI(base_url=${literal(openai)}, api_key=${literal(key)}, model=${literal(model)})\n` +
        `print(llm.invoke("Hello").content)`,
    },
    {
      id: 'langchain-js',
      title: 'LangChain (JavaScript)',
      text:
        `import { ChatOllama } from '@langchain/ollama';\n\n` +
        `const llm = new ChatOllama({ baseUrl: ${literal(ollama)}, model: ${literal(model)}, headers: { Authorization: ${literal(`Bearer ${key}`)} } });\n` +
        `console.log((await llm.invoke('Hello')).content);`,
    },
    {
      id: 'continue',
      title: 'Continue (config.yaml)',
      text:
        `models:\n` +
        `  - name: ${model} on my computer\n` +
        `    provider: openai\n` +
        `    model: ${model}\n` +
        `    apiBase: ${openai}\n` +
        `    apiKey: ${key}`,
    },
  ];
}

/** What the QR code holds: the Ollama base URL and the key, one per line, for a phone app's two fields. */
export function qrText(ollamaBaseUrl: string, key: string): string {
  return `${ollamaBaseUrl.replace(/\/+$/, '')}\n${key}`;
}
