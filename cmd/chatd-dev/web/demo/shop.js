// The demo storefront's glue: it hands the widget a function that returns the shopper's token.
// A real storefront returns the token its own login gave the shopper; here chatd-dev mints one
// with the tenant's development issuer.

const chat = /** @type {import('/widget/v1/support-chat.js').SupportChatElement} */ (document.querySelector('support-chat'));
const page = new URLSearchParams(location.search);

chat.getToken = async () => {
  const res = await fetch('/demo/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      tenant: chat.getAttribute('tenant'),
      role: 'customer',
      sub: page.get('shopper') || undefined,
      name: page.get('name') || undefined,
    }),
  });
  if (!res.ok) throw new Error(`no demo token: ${res.status}`);
  return (await res.json()).access_token;
};
