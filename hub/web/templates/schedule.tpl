% rebase('base.tpl', charts=True)
<h1>{{_('schedule.title')}}: {{device.name}}</h1>
% include('form_error.tpl', error=None, error_text=error)
% if saved:
<p class="ok" role="status" id="saved">{{_('schedule.saved')}}</p>
% end
<div class="grid">
<form method="post" action="/devices/{{device.id}}/schedule" class="card stack" id="schedule-form" data-device="{{device.id}}">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label for="ready_by">{{_('schedule.ready_by')}}</label>
  <input id="ready_by" name="ready_by" type="time" value="{{d.get('ready_by', '07:00')}}" required>
  <fieldset>
    <legend>{{_('schedule.run_for')}}</legend>
    <label for="period_h">{{_('schedule.hours')}}</label>
    <input id="period_h" name="period_h" type="number" min="0" max="23" value="{{period_h}}" inputmode="numeric">
    <label for="period_m">{{_('schedule.minutes')}}</label>
    <input id="period_m" name="period_m" type="number" min="0" max="59" step="5" value="{{period_m}}" inputmode="numeric">
  </fieldset>
  <label class="check"><input type="checkbox" name="interruptible" value="1" {{!'checked' if d.get('interruptible') else ''}}> {{_('schedule.interruptible')}}</label>
  <fieldset class="days">
    <legend>{{_('schedule.repeat')}}</legend>
    % for i in range(7):
    <label class="chip"><input type="checkbox" name="day{{i}}" value="1" {{!'checked' if i in repeat else ''}}> {{_('day.' + str(i))}}</label>
    % end
    <p class="hint">{{_('schedule.once_hint')}}</p>
  </fieldset>
  <label for="on_completion">{{_('schedule.when_done')}}</label>
  <select id="on_completion" name="on_completion">
    % for m in ('off', 'smart', 'on'):
    <option value="{{m}}" {{!'selected' if d.get('on_completion') == m else ''}}>{{_('schedule.done_' + m)}}</option>
    % end
  </select>
  <div class="buttons">
    <button type="button" id="preview-button">{{_('schedule.preview')}}</button>
    <button type="submit" class="primary">{{_('schedule.save')}}</button>
  </div>
</form>
<figure class="card chart" id="preview" data-now="{{(preview or {}).get('now', '')}}">
  <figcaption id="preview-sentence">{{sentence}}</figcaption>
  <div class="plot" id="preview-plot"></div>
  <script type="application/json" id="preview-data">{{!preview_json}}</script>
  <details>
    <summary>{{_('chart.table')}}</summary>
    <ul id="preview-windows">
    % for w in (preview or {}).get('windows', []):
      <li data-start="{{w['start']}}" data-end="{{w['end']}}">{{fmt.hhmm(w['start'], tz)}}–{{fmt.hhmm(w['end'], tz)}}</li>
    % end
    </ul>
  </details>
</figure>
</div>
