<!doctype html>
<html lang="{{lang}}" data-theme="{{theme}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf" content="{{csrf}}">
<meta name="color-scheme" content="light dark">
<title>{{title}} · CydYnni</title>
<link rel="stylesheet" href="/static/app.css">
% if get('charts'):
<link rel="stylesheet" href="/static/vendor/uPlot.min.css">
% end
<link rel="manifest" href="/static/manifest.json">
<link rel="icon" href="/static/icon.svg" type="image/svg+xml">
</head>
<body class="{{'kiosk' if kiosk else ''}}">
<a class="skip" href="#main">{{_('nav.skip')}}</a>
<header class="top">
  <a class="brand" href="/">CydYnni</a>
  % if user:
  <span class="who">{{get('household_name') or user.username}}</span>
  % end
  <nav class="lang" aria-label="{{_('nav.language')}}">
    <a href="?lang=en" hreflang="en" lang="en" {{!'aria-current="true"' if lang == 'en' else ''}}>English</a>
    <a href="?lang=cy" hreflang="cy" lang="cy" {{!'aria-current="true"' if lang == 'cy' else ''}}>Cymraeg</a>
  </nav>
</header>
<div id="banner" class="banner" role="status" aria-live="polite" hidden></div>
<main id="main">
{{!base}}
</main>
% if user:
<nav class="tabs" aria-label="{{_('nav.main')}}">
  % for href, key in tabs:
  <a href="{{href}}" {{!'aria-current="page"' if path == href else ''}}>{{_(key)}}</a>
  % end
  <details class="more">
    <summary>{{_('nav.more')}}</summary>
    <ul>
      % for href, key in more:
      <li><a href="{{href}}">{{_(key)}}</a></li>
      % end
      % for href, key in admin_links:
      <li><a href="{{href}}">{{_(key)}}</a></li>
      % end
      <li><a href="/account/password">{{_('nav.password')}}</a></li>
      <li><form method="post" action="/logout"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="link">{{_('nav.logout')}}</button></form></li>
    </ul>
  </details>
</nav>
<dialog id="pair-dialog" aria-labelledby="pair-title">
  <h2 id="pair-title">{{_('pair.title')}}</h2>
  <p id="pair-what"></p>
  <p id="pair-countdown" class="muted"></p>
  <ol id="pair-steps" class="steps" hidden>
    <li data-step="sending">{{_('pair.sending')}}</li>
    <li data-step="connected">{{_('pair.connected')}}</li>
    <li data-step="reading">{{_('pair.reading')}}</li>
  </ol>
  <div class="buttons">
    <button type="button" id="pair-allow" class="primary">{{_('pair.allow')}}</button>
    <button type="button" id="pair-ignore">{{_('pair.ignore')}}</button>
    <button type="button" id="pair-close" hidden>{{_('pair.close')}}</button>
  </div>
</dialog>
% end
<script type="application/json" id="i18n">{{!js_messages}}</script>
% if get('charts'):
<script src="/static/vendor/uPlot.iife.min.js"></script>
% end
<script src="/static/app.js"></script>
</body>
</html>
