// Plunk's official Node SDK against the live test server (tests/api/test_node_sdk.py).
// Prints one JSON line: what emails.send returned, the events listed afterwards, and the errors
// the SDK threw for a bad body and for the public key.
const Plunk = require("@plunk/node").default;

const { PLUNK_URL, SECRET_KEY, PUBLIC_KEY, TO } = process.env;

async function thrown(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return { name: error.name, type: error.constructor.name, message: error.message };
  }
}

(async () => {
  const plunk = new Plunk(SECRET_KEY, { baseUrl: `${PLUNK_URL}/v1/` });
  const sent = await plunk.emails.send({
    to: TO,
    subject: "Hello from the SDK",
    body: "<p>Hello {{name ?? there}}</p>",
  });
  const response = await fetch(`${PLUNK_URL}/events?eventName=email.sent`, {
    headers: { Authorization: `Bearer ${SECRET_KEY}` },
  });
  const events = await response.json();
  const invalid = await thrown(plunk.emails.send({ to: "not an address", subject: "s", body: "b" }));
  const publicKey = await thrown(
    new Plunk(PUBLIC_KEY, { baseUrl: `${PLUNK_URL}/v1/` }).emails.send({ to: TO, subject: "s", body: "b" }),
  );
  process.stdout.write(JSON.stringify({ sent, events, invalid, publicKey }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
