% rebase('base.tpl')
<h1>{{_('settings.title')}}</h1>
% include('form_error.tpl', error=None, error_text=error)
% if saved:
<p class="ok" role="status" id="settings-saved">{{_('settings.saved_' + saved)}}</p>
% end
<div class="grid">
<form method="post" action="/settings" class="card stack" aria-labelledby="display-title">
  <h2 id="display-title">{{_('settings.display')}}</h2>
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input type="hidden" name="section" value="display">
  <label for="hh-name">{{_('settings.household')}}</label>
  <input id="hh-name" name="name" value="{{household.name}}" maxlength="64">
  <label for="lang-select">{{_('settings.language')}}</label>
  <select id="lang-select" name="lang">
    <option value="en" {{!'selected' if lang == 'en' else ''}}>English</option>
    <option value="cy" {{!'selected' if lang == 'cy' else ''}}>Cymraeg</option>
  </select>
  <label for="theme-select">{{_('settings.theme')}}</label>
  <select id="theme-select" name="theme">
    % for t in ('auto', 'light', 'dark'):
    <option value="{{t}}" {{!'selected' if theme == t else ''}}>{{_('settings.theme_' + t)}}</option>
    % end
  </select>
  <label for="power-feed">{{_('settings.power_feed')}}</label>
  <select id="power-feed" name="power_feed">
    <option value="">{{_('settings.power_feed_auto')}}</option>
    % for f in feeds:
    <option value="{{f.id}}" {{!'selected' if household.power_feed == f.id else ''}}>{{f.tag + ':' if f.tag else ''}}{{f.name}}</option>
    % end
  </select>
  <p class="hint">{{_('settings.power_feed_now', name=power_feed.name if power_feed else '–')}}</p>
  <button type="submit" class="primary">{{_('settings.save')}}</button>
</form>
<form method="post" action="/settings" class="card stack" id="tariff" aria-labelledby="tariff-title">
  <h2 id="tariff-title">{{_('settings.tariff')}}</h2>
  <input type="hidden" name="csrf" value="{{csrf}}">
  <input type="hidden" name="section" value="tariff">
  % if not household.tariff:
  <p class="missing">{{_('tariff.missing')}}</p>
  % end
  <p class="hint">{{_('settings.tariff_hint')}}</p>
  % rows = list(bands) + [None] * blank
  % for i, b in enumerate(rows):
  <fieldset class="band">
    <legend>{{_('tariff.band')}} {{i + 1}}</legend>
    <label for="band{{i}}_name">{{_('tariff.name')}}</label>
    <input id="band{{i}}_name" name="band{{i}}_name" value="{{b.name if b else ''}}" maxlength="32">
    <label for="band{{i}}_start">{{_('tariff.start')}}</label>
    <input id="band{{i}}_start" name="band{{i}}_start" type="time" value="{{b.start if b else ''}}">
    <label for="band{{i}}_end">{{_('tariff.end')}}</label>
    <input id="band{{i}}_end" name="band{{i}}_end" type="time" value="{{b.end if b else ''}}">
    <label for="band{{i}}_price">{{_('tariff.price')}}</label>
    <input id="band{{i}}_price" name="band{{i}}_price" inputmode="decimal" value="{{b.price if b else ''}}">
  </fieldset>
  % end
  <label for="standing">{{_('tariff.standing_p')}}</label>
  <input id="standing" name="standing" inputmode="decimal" value="{{household.tariff.standing if household.tariff else ''}}">
  <div class="buttons">
    <button type="submit" class="primary">{{_('settings.save_tariff')}}</button>
    % if household.tariff:
    <button type="submit" name="clear" value="1">{{_('settings.clear_tariff')}}</button>
    % end
  </div>
</form>
<section class="card stack" aria-labelledby="keys-title">
  <h2 id="keys-title">{{_('settings.keys')}}</h2>
  <p class="hint">{{_('settings.keys_hint')}}</p>
  % if show_keys:
  <dl class="facts keys">
    <dt>{{_('settings.key_read')}}</dt><dd><code>{{apikey_read}}</code></dd>
    <dt>{{_('settings.key_write')}}</dt><dd><code>{{apikey_write}}</code></dd>
  </dl>
  % else:
  <form method="post" action="/settings">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <input type="hidden" name="section" value="keys">
    <button type="submit">{{_('settings.show_keys')}}</button>
  </form>
  % end
  <h2>{{_('settings.export')}}</h2>
  <p><a href="/settings/export.csv" download>{{_('settings.export_link')}}</a></p>
</section>
</div>
