// linkd's emulated Link page. Every step is reported as Plaid's webview
// Link reports it: by navigating the window to a plaidlink:// URL, which the
// app's webview intercepts (WKWebView decidePolicyFor navigationAction,
// Android shouldOverrideUrlLoading) and cancels.
(function () {
  'use strict';

  var cfg = JSON.parse(document.getElementById('link-config').textContent);

  // --- Redirects -----------------------------------------------------------
  // A navigation started while the webview is still deciding the previous
  // one can replace it before the delegate sees it, so redirects go out one
  // at a time, GAP_MS apart, in order. whenSent runs a callback once the
  // queue is empty (before Link itself navigates away, e.g. to OAuth).
  var GAP_MS = 60;
  var queue = [];
  var pumping = false;
  var idle = [];

  // Outside a webview (isWebview is not true: a desktop browser trying the
  // page) nothing would catch the navigations, and a browser asks what to
  // do with each; the page lists them instead.
  var inWebview = new URLSearchParams(window.location.search).get('isWebview') === 'true';
  var sent = [];

  // Every session reports itself when it ends (api/finish), with its
  // events, as Plaid's Link reports every session to Plaid, whose
  // /link/token/get lists it. Hosted Link (a browser tab, no webview
  // delegate) fires no redirects and then goes to the token's
  // completion_redirect_uri. A webview session reports before its final
  // redirect (connected or exit), so that Plaid knows of the session by
  // the time the app's backend has it: linkd asks Plaid before it takes an
  // update-mode connected redirect as a repair. A report that fails, or
  // has not answered within reportWait, still lets the redirect go.
  var hosted = !!cfg.hosted;
  var sessionEvents = [];

  function redirect(url) {
    if (hosted) return;
    if (!inWebview) {
      sent.push(url);
      document.getElementById('browser-redirects').hidden = false;
      document.getElementById('redirect-count').textContent = String(sent.length);
      document.getElementById('redirect-log').value = sent.join('\n');
      return;
    }
    queue.push(url);
    if (!pumping) pump();
  }
  function pump() {
    if (!queue.length) {
      pumping = false;
      var fns = idle;
      idle = [];
      fns.forEach(function (fn) { fn(); });
      return;
    }
    pumping = true;
    window.location.href = queue.shift();
    setTimeout(pump, GAP_MS);
  }
  function whenSent(fn) {
    if (!pumping && !queue.length) fn(); else idle.push(fn);
  }

  // query joins key/value pairs; a key without a value is sent bare
  // (&mfa_type), as Plaid sends it.
  function query(pairs) {
    return pairs.map(function (p) {
      return p[1] == null || p[1] === '' ? p[0] : p[0] + '=' + encodeURIComponent(p[1]);
    }).join('&');
  }

  // Timestamps strictly increase, so events sort in the order they happened.
  var lastMs = 0;
  function timestamp() {
    var t = Date.now();
    if (t <= lastMs) t = lastMs + 1;
    lastMs = t;
    return new Date(t).toISOString();
  }

  var state = {
    view: null,
    institution: cfg.institution || null,
    requestId: cfg.request_id,
    lastSearchEmpty: false,
    errorStatus: '',
    error: null,
    publicToken: '',
    selected: [],
    done: false
  };

  function event(name, m) {
    m = m || {};
    var ins = state.institution || {};
    var err = m.error || {};
    // One timestamp for the report and the redirect: linkd takes them
    // as one event.
    var at = timestamp();
    var md = {};
    [['error_type', err.error_type], ['error_code', err.error_code], ['error_message', err.error_message],
      ['exit_status', m.exit_status], ['institution_id', ins.id], ['institution_name', ins.name],
      ['institution_search_query', m.query], ['mfa_type', m.mfa_type], ['view_name', m.view_name],
      ['request_id', state.requestId]].forEach(function (p) { if (p[1] != null && p[1] !== '') md[p[0]] = String(p[1]); });
    sessionEvents.push({ event_name: name, timestamp: at, metadata: md });
    if (hosted) return;
    redirect('plaidlink://event?' + query([
      ['event_name', name],
      ['error_type', err.error_type],
      ['error_code', err.error_code],
      ['error_message', err.error_message],
      ['exit_status', m.exit_status],
      ['institution_id', ins.id],
      ['institution_name', ins.name],
      ['institution_search_query', m.query],
      ['is_update_mode', m.is_update_mode],
      ['match_reason', null],
      ['mfa_type', m.mfa_type],
      ['view_name', m.view_name],
      ['request_id', state.requestId],
      ['link_session_id', cfg.link_session_id],
      ['timestamp', at],
      ['selection', null]
    ]));
  }

  function exitLink(status, err, keepView) {
    if (state.done) return;
    state.done = true;
    flushSearch();
    err = err || {};
    var ins = state.institution || {};
    event('EXIT', { exit_status: status, error: err });
    var report = { exit_status: status || 'requires_credentials', institution_id: ins.id || '' };
    if (hosted) {
      finishHosted(report, 'Link closed');
      return;
    }
    var requestId = state.requestId; // Link's last request before the report
    reportSession(report).then(function () {
      redirect('plaidlink://exit?' + query([
        ['status', status],
        ['error_type', err.error_type],
        ['error_code', err.error_code],
        ['error_message', err.error_message],
        ['error_display_message', err.display_message],
        ['institution_id', ins.id],
        ['institution_name', ins.name],
        ['link_session_id', cfg.link_session_id],
        ['request_id', requestId]
      ]));
    });
    if (!keepView) {
      $('done-title').textContent = 'Link closed';
      show('done');
    }
  }

  function connected() {
    if (state.done) return;
    state.done = true;
    var ins = state.institution;
    var accounts = state.selected.map(function (a) {
      return { _id: a.id, meta: { name: a.name, number: a.mask }, type: a.type, subtype: a.subtype };
    });
    event('HANDOFF');
    if (hosted) {
      finishHosted({}, 'Connected');
      return;
    }
    reportSession({}).then(function () {
      redirect('plaidlink://connected?' + query([
        ['public_token', state.publicToken],
        ['institution_id', ins.id],
        ['institution_name', ins.name],
        ['accounts', JSON.stringify(accounts)],
        ['link_session_id', cfg.link_session_id]
      ]));
      show('done');
    });
  }

  // reportSession reports the session as it ended (see sessionEvents);
  // it resolves either way. A webview session's final redirect waits for
  // the report at most reportWait: a report that hangs (Plaid's LINK
  // webhooks to a slow receiver go out before it answers) must not keep
  // the app from ever hearing of the session.
  var reportWait = 3000;
  function reportSession(body) {
    body.events = sessionEvents;
    var report = call('finish', body);
    if (hosted) return report; // the report is all a Hosted Link session has
    return Promise.race([report, new Promise(function (resolve) { setTimeout(resolve, reportWait); })]);
  }

  // finishHosted reports a Hosted Link session, then leaves for the
  // completion_redirect_uri (or says it is done when there is none).
  function finishHosted(body, title) {
    reportSession(body).then(function () {
      if (cfg.completion_redirect_uri) {
        window.location.assign(cfg.completion_redirect_uri);
        return;
      }
      $('done-title').textContent = title;
      show('done');
    });
  }

  // --- Views ---------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  var views = Array.prototype.slice.call(document.querySelectorAll('.view'));

  // exitStatus is the exit status for closing Link on the current view.
  function exitStatus() {
    switch (state.view) {
      case 'select-institution': return state.lastSearchEmpty ? 'institution_not_found' : 'requires_credentials';
      case 'oauth': return 'requires_oauth';
      case 'oauth-popup': return 'requires_oauth';
      case 'mfa': return 'requires_code';
      case 'select-account': return 'requires_account_selection';
      case 'error': return state.errorStatus;
      default: return 'requires_credentials';
    }
  }

  function show(id) {
    var section = $('view-' + id);
    views.forEach(function (v) { v.hidden = v !== section; });
    state.view = id;
    $('close').hidden = !section.hasAttribute('data-closable');
    $('back').hidden = !section.hasAttribute('data-back') || cfg.update_mode || cfg.resumed;
    var ins = state.institution;
    if (ins) {
      Array.prototype.forEach.call(section.querySelectorAll('.ins-name'), function (el) { el.textContent = ins.name; });
      Array.prototype.forEach.call(section.querySelectorAll('.ins-logo'), function (el) { el.textContent = ins.name.charAt(0); });
    }
    var name = section.getAttribute('data-view');
    if (name && !state.done) {
      event('TRANSITION_VIEW', { view_name: name, mfa_type: name === 'MFA' ? 'code' : null });
    }
    var first = section.querySelector('input:not([type=hidden]):not([type=checkbox])') || section.querySelector('h1');
    if (first) first.focus();
  }

  function fail(err, status) {
    event('ERROR', { error: err });
    state.error = err;
    state.errorStatus = status;
    $('error-message').textContent = err.display_message || err.error_message;
    $('error-code').textContent = err.error_code;
    show('error');
  }

  function inlineError(id, err) {
    event('ERROR', { error: err });
    var box = $(id);
    box.textContent = err.display_message || err.error_message;
    box.hidden = false;
  }

  function call(path, body, button) {
    body.link_token = cfg.link_token;
    body.link_session_id = cfg.link_session_id;
    if (button) button.disabled = true;
    return fetch('api/' + path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit'
    }).then(function (r) { return r.json(); }).catch(function () {
      return { error: { error_type: 'API_ERROR', error_code: 'INTERNAL_SERVER_ERROR', error_message: 'the request failed',
        display_message: 'Check your connection and try again.' } };
    }).then(function (res) {
      if (button) button.disabled = false;
      if (res.request_id) state.requestId = res.request_id;
      return res;
    });
  }

  // --- Institution select --------------------------------------------------
  var searchTimer = null;
  var pendingQuery = null;

  function renderInstitutions(q) {
    var list = $('institutions');
    list.textContent = '';
    var needle = q.trim().toLowerCase();
    var shown = cfg.institutions.filter(function (ins) { return ins.name.toLowerCase().indexOf(needle) >= 0; });
    shown.forEach(function (ins) {
      var li = document.createElement('li');
      var b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('data-institution-id', ins.id);
      var logo = document.createElement('span');
      logo.className = 'ins-logo';
      logo.setAttribute('aria-hidden', 'true');
      logo.textContent = ins.name.charAt(0);
      var text = document.createElement('span');
      text.textContent = ins.name;
      var sub = document.createElement('span');
      sub.className = 'sub';
      sub.textContent = ins.oauth_popup ? 'Log in on the bank’s site, in a new window (OAuth)' : ins.oauth ? 'Log in on the bank’s site (OAuth)' : (ins.id === 'ins_109511' ? 'Asks for a code' : ins.id);
      text.appendChild(sub);
      b.appendChild(logo);
      b.appendChild(text);
      b.addEventListener('click', function () { selectInstitution(ins); });
      li.appendChild(b);
      list.appendChild(li);
    });
    $('no-results').hidden = shown.length > 0;
    return shown.length;
  }

  function flushSearch() {
    if (pendingQuery === null) return;
    clearTimeout(searchTimer);
    var q = pendingQuery;
    pendingQuery = null;
    event('SEARCH_INSTITUTION', { query: q });
  }

  $('search').addEventListener('input', function (e) {
    var q = e.target.value;
    var n = renderInstitutions(q);
    state.lastSearchEmpty = q.trim() !== '' && n === 0;
    clearTimeout(searchTimer);
    pendingQuery = q.trim() === '' ? null : q;
    if (pendingQuery !== null) searchTimer = setTimeout(flushSearch, 300);
  });

  function selectInstitution(ins) {
    flushSearch();
    state.institution = ins;
    event('SELECT_INSTITUTION');
    toLogin();
  }

  function toLogin() {
    if (state.institution.oauth) {
      show('oauth');
      return;
    }
    $('credential-error').hidden = true;
    $('password').value = '';
    show('credential');
  }

  // --- Steps ---------------------------------------------------------------
  $('consent-continue').addEventListener('click', function () {
    if (state.institution) toLogin(); else show('select-institution');
  });

  $('credential-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var user = $('username'), pass = $('password');
    if (!user.value || !pass.value) {
      var box = $('credential-error');
      box.textContent = 'Enter your username and password.';
      box.hidden = false;
      (user.value ? pass : user).focus();
      return;
    }
    event('SUBMIT_CREDENTIALS');
    call('credentials', { institution_id: state.institution.id, username: user.value, password: pass.value }, $('credential-submit'))
      .then(function (res) {
        if (res.error && res.fatal) return fail(res.error, 'requires_credentials');
        if (res.error) {
          inlineError('credential-error', res.error);
          pass.value = '';
          pass.focus();
          return;
        }
        if (res.next === 'mfa') {
          $('mfa-error').hidden = true;
          show('mfa');
        } else {
          toAccounts();
        }
      });
  });

  $('mfa-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var code = $('code');
    event('SUBMIT_MFA', { mfa_type: 'code' });
    call('mfa', { code: code.value }, $('mfa-submit')).then(function (res) {
      if (res.error && res.fatal) return fail(res.error, 'requires_code');
      if (res.error) {
        inlineError('mfa-error', res.error);
        code.value = '';
        code.focus();
        return;
      }
      toAccounts();
    });
  });

  $('oauth-continue').addEventListener('click', function () {
    call('oauth', { institution_id: state.institution.id }, $('oauth-continue')).then(function (res) {
      if (res.error) return fail(res.error, 'requires_oauth');
      event('OPEN_OAUTH');
      // Link leaves for the bank only once every redirect is out.
      whenSent(function () {
        if (state.institution.oauth_popup) openBankWindow(res.url); else window.location.assign(res.url);
      });
    });
  });

  // openBankWindow opens the bank's page in a new window, as Plaid's Link
  // does for Chase. What window.open returns says nothing: a webview app
  // that opens the page in a secure browser returns no window (WKUIDelegate
  // createWebViewWith returning nil), just as one that ignores it does. So
  // Link waits either way; the bank's return to redirect_uri relaunches it
  // in a webview, and a Hosted Link tab asks linkd until the bank has
  // answered.
  var bankURL = '';
  var polling = null;
  function openBankWindow(url) {
    bankURL = url;
    window.open(url, '_blank');
    if (state.view !== 'oauth-popup') show('oauth-popup');
    if (hosted && !polling) polling = setInterval(pollOAuth, 1000);
  }
  $('oauth-reopen').addEventListener('click', function () { openBankWindow(bankURL); });

  function pollOAuth() {
    if (state.view !== 'oauth-popup') { clearInterval(polling); polling = null; return; }
    call('oauth_status', {}).then(function (res) {
      if (state.view !== 'oauth-popup' || (!res.next && !res.fatal)) return;
      clearInterval(polling);
      polling = null;
      if (res.error) return fail(res.error, 'requires_oauth');
      toAccounts();
    });
  }

  // toAccounts follows a login: account select, or in update mode (as
  // Plaid's, without account_selection_enabled) straight on to connect
  // the Item's accounts, which are all the preselected institution has.
  // With account selection, update mode shows account select with the
  // Item's accounts checked.
  function toAccounts() {
    if (cfg.update_mode && !cfg.account_selection) {
      connectAccounts(state.institution.accounts.map(function (a) { return a.id; }), null, 'requires_credentials');
      return;
    }
    var box = $('accounts');
    box.textContent = '';
    state.institution.accounts.forEach(function (a, i) {
      var label = document.createElement('label');
      var input = document.createElement('input');
      input.type = 'checkbox';
      input.name = 'account';
      input.value = a.id;
      input.checked = cfg.account_selection ? (cfg.selected_account_ids || []).indexOf(a.id) >= 0 : i === 0;
      var text = document.createElement('span');
      text.textContent = a.name + ' ••' + a.mask;
      var sub = document.createElement('span');
      sub.className = 'sub';
      sub.textContent = a.subtype + ' · ' + a.type;
      text.appendChild(sub);
      label.appendChild(input);
      label.appendChild(text);
      box.appendChild(label);
    });
    $('account-error').hidden = true;
    show('select-account');
  }

  $('account-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var ids = Array.prototype.map.call(document.querySelectorAll('#accounts input:checked'), function (i) { return i.value; });
    if (!ids.length) {
      var box = $('account-error');
      box.textContent = 'Select at least one account.';
      box.hidden = false;
      return;
    }
    connectAccounts(ids, $('account-submit'), 'requires_account_selection');
  });

  function connectAccounts(ids, button, status) {
    call('connect', { institution_id: state.institution.id, account_ids: ids }, button).then(function (res) {
      if (res.error && (res.fatal || !button)) return fail(res.error, status);
      if (res.error) return inlineError('account-error', res.error);
      state.publicToken = res.public_token;
      state.selected = state.institution.accounts.filter(function (a) { return ids.indexOf(a.id) >= 0; });
      show('connected');
    });
  }

  $('connected-continue').addEventListener('click', connected);
  $('error-exit').addEventListener('click', function () { exitLink(state.errorStatus, state.error); });
  $('close').addEventListener('click', function () { exitLink(exitStatus()); });
  $('back').addEventListener('click', function () {
    state.institution = null;
    show('select-institution');
  });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && !$('close').hidden) exitLink(exitStatus());
  });

  // --- Start ---------------------------------------------------------------
  renderInstitutions('');
  if (cfg.error) {
    // An invalid link token (or a bad OAuth relaunch): Link exits at once.
    state.error = cfg.error;
    state.errorStatus = cfg.status || '';
    $('error-title').textContent = cfg.error.error_code === 'INVALID_LINK_TOKEN' ? 'This link is no longer valid' : 'Something went wrong';
    $('error-message').textContent = cfg.error.display_message || 'Go back to the app and start again.';
    $('error-code').textContent = cfg.error.error_code;
    $('error-exit').hidden = true;
    show('error');
    exitLink(cfg.status || '', cfg.error, true);
  } else if (cfg.resumed) {
    // Relaunched after OAuth: same session, on to account select.
    toAccounts();
  } else {
    event('OPEN', { is_update_mode: cfg.update_mode ? 'true' : 'false' });
    show('consent');
  }
})();
