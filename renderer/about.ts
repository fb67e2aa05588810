/**
 * The About window: what is running and where to read more. Links open in the system browser
 * through the main process; this window itself never navigates.
 */
import { desktopApi, reportFatal } from './lib/desktop-api.js';
import { byId, element } from '@cloudtolocalllm/dom';

function isWebUrl(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === 'https:' || protocol === 'http:';
  } catch {
    return false;
  }
}

async function start(): Promise<void> {
  const api = desktopApi();
  // Every link, now or later, goes to the system browser: the window keeps showing this page.
  const openOutside = (event: MouseEvent): void => {
    const link = event.target instanceof Element ? event.target.closest('a[href]') : null;
    if (!link) return;
    event.preventDefault();
    const url = link.getAttribute('href') ?? '';
    if (isWebUrl(url)) api.openExternal(url).catch(reportFatal);
  };
  document.addEventListener('click', openOutside);
  document.addEventListener('auxclick', openOutside);

  const about = await api.getAbout();
  document.title = `About ${about.name}`;
  byId('about-name', HTMLElement).textContent = about.name;
  byId('about-version', HTMLElement).textContent = about.version;
  byId('about-electron', HTMLElement).textContent = about.electron;
  byId('about-node', HTMLElement).textContent = about.node;
  byId('about-chromium', HTMLElement).textContent = about.chromium;
  byId('about-license', HTMLElement).textContent = about.license;
  const list = byId('about-links', HTMLUListElement);
  list.replaceChildren(
    ...about.links
      .filter((link) => isWebUrl(link.url))
      .map((link) =>
        element('li', {}, [
          element('a', { text: link.label, attrs: { href: link.url, title: link.url } }),
          element('span', { className: 'url', text: new URL(link.url).host }),
        ]),
      ),
  );
  byId('about', HTMLElement).setAttribute('aria-busy', 'false');
  document.body.dataset['ready'] = 'true';
}

start().catch(reportFatal);
