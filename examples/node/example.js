// Calls linkd over gRPC the way a Node backend would: create a link token,
// parse a Link redirect, and read the google.rpc.BadRequest linkd attaches
// to a bad request (the grpc-status-details-bin trailer).
//
//   LINKD_GRPC_ADDR=127.0.0.1:50051 LINKD_API_KEY=$(cat data/api-key) node example.js
//
// It exits non-zero when linkd does not answer as documented, so CI can run it.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const loadOptions = {
  keepCase: true, // the proto field names, as linkd's REST API and docs use
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: [path.resolve(__dirname, '../../proto'), path.resolve(__dirname, '../proto')],
};
const linkdv1 = grpc.loadPackageDefinition(protoLoader.loadSync('linkd/v1/link.proto', loadOptions)).linkd.v1;
// protobufjs types for the status details, with the proto field names.
const protobuf = require('protobufjs');
const rpcRoot = new protobuf.Root().loadSync(
  ['google/rpc/status.proto', 'google/rpc/error_details.proto'].map((f) => path.resolve(__dirname, '../proto', f)),
  { keepCase: true });
const Status = rpcRoot.lookupType('google.rpc.Status');
const detailTypes = {
  'type.googleapis.com/google.rpc.BadRequest': rpcRoot.lookupType('google.rpc.BadRequest'),
  'type.googleapis.com/google.rpc.ErrorInfo': rpcRoot.lookupType('google.rpc.ErrorInfo'),
};

const addr = process.env.LINKD_GRPC_ADDR || '127.0.0.1:50051';
const apiKey = process.env.LINKD_API_KEY;
if (!apiKey) {
  console.error('set LINKD_API_KEY (linkd stores a generated one in data/api-key)');
  process.exit(2);
}

// The API key goes on every call as "authorization: Bearer <key>". It is
// sent as call metadata rather than call credentials because grpc-js sends
// call credentials only over TLS, and this example also talks to a
// loopback linkd in plaintext. LINKD_TLS=1 dials with TLS.
const channelCreds = process.env.LINKD_TLS === '1' ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
const client = new linkdv1.LinkService(addr, channelCreds);

function call(method, request) {
  const md = new grpc.Metadata();
  md.set('authorization', 'Bearer ' + apiKey);
  return new Promise((resolve, reject) => {
    client[method](request, md, { deadline: Date.now() + 10000 }, (err, resp) => (err ? reject(err) : resolve(resp)));
  });
}

// statusDetails decodes the google.rpc.Status linkd sends in the
// grpc-status-details-bin trailer, with each known detail decoded.
function statusDetails(err) {
  const bin = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!bin) return null;
  const st = Status.decode(bin);
  return {
    code: st.code,
    message: st.message,
    details: st.details.map((any) => {
      const type = detailTypes[any.type_url];
      return type ? { '@type': any.type_url, ...type.toObject(type.decode(any.value)) } : { '@type': any.type_url };
    }),
  };
}

function check(cond, what) {
  if (!cond) throw new Error('unexpected: ' + what);
}

async function main() {
  // 1. A link token for the app's user; the app opens webview_url.
  const created = await call('CreateLinkToken', { client_user_id: 'node-user-1' });
  const token = created.link_token;
  check(token && token.link_token && token.webview_url, 'CreateLinkToken answered ' + JSON.stringify(created));
  console.log('link_token:', token.link_token);
  console.log('webview_url:', token.webview_url);

  // 2. A redirect the webview intercepted, made sense of.
  const redirect = 'plaidlink://exit?status=requires_credentials&error_code=INVALID_CREDENTIALS' +
    '&error_type=ITEM_ERROR&link_session_id=node-sess-1&institution_id=ins_109508';
  const parsed = await call('ParseRedirect', { url: redirect });
  console.log('parsed redirect:', JSON.stringify(parsed.redirect));
  check(parsed.redirect && parsed.redirect.exit && parsed.redirect.exit.link_session_id === 'node-sess-1', 'link_session_id not parsed');

  // 3. A bad request: INVALID_ARGUMENT, and a google.rpc.BadRequest naming the field.
  try {
    await call('ParseRedirect', { url: 'https://example.com/not-a-link-redirect' });
    throw new Error('unexpected: a bad redirect was accepted');
  } catch (err) {
    if (err.code !== grpc.status.INVALID_ARGUMENT) throw err;
    const st = statusDetails(err);
    console.log('bad request:', JSON.stringify(st));
    const badRequest = st && st.details.find((d) => d['@type'] === 'type.googleapis.com/google.rpc.BadRequest');
    check(badRequest && badRequest.field_violations[0].field === 'url', 'no BadRequest naming url');
    console.log('field:', badRequest.field_violations[0].field, '-', badRequest.field_violations[0].description);
  }
}

main().then(
  () => { client.close(); console.log('ok'); },
  (err) => { console.error(err.stack || err); client.close(); process.exit(1); },
);
