% rebase('base.tpl')
<h1>{{_('devices.title')}}</h1>
<p><a class="button" href="/devices/pair">{{_('devices.add')}}</a></p>
% if not cards:
<p class="missing">{{_('devices.none')}}</p>
% end
<div class="grid">
% for c in cards:
<section class="card device" aria-labelledby="dev-{{c.id}}" data-device="{{c.id}}">
  <h2 id="dev-{{c.id}}">{{c.name}}</h2>
  <p class="muted">{{c.type}}
  % if c.is_on is not None:
   · {{_('devices.is_on') if c.is_on else _('devices.is_off')}}
  % end
  % if c.power is not None:
   · {{fmt.power(c.power)}}
  % end
  </p>
  <form method="post" action="/devices/{{c.id}}/mode" class="segmented modes">
    <input type="hidden" name="csrf" value="{{csrf}}">
    % for m in ('on', 'off', 'smart'):
    <button type="submit" name="mode" value="{{m}}" aria-pressed="{{'true' if c.mode == m else 'false'}}">{{_('devices.mode_' + m)}}</button>
    % end
  </form>
  <p class="sync sync-{{c.sync}}" data-sync="{{c.sync}}"><span aria-hidden="true">{{'✓' if c.sync == 'saved' else ('…' if c.sync == 'pending' else '⚠')}}</span> {{_('devices.sync_' + c.sync)}}</p>
  % if c.next_run:
  <p>{{_('devices.next_run', start=fmt.hhmm(c.next_run['start'], tz), end=fmt.hhmm(c.next_run['end'], tz))}}</p>
  % elif c.mode == 'smart':
  <p class="muted">{{_('devices.no_run')}}</p>
  % end
  <p class="hint">{{_('devices.manual_note')}}</p>
  <p><a href="/devices/{{c.id}}/schedule">{{_('devices.edit_schedule')}} ›</a></p>
</section>
% end
</div>
