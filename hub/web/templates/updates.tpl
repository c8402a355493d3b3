% rebase('base.tpl')
<h1>{{_('updates.title')}}</h1>
<section class="card" id="update-status" data-state="{{status_.state if status_.set_up else 'not_set_up'}}">
% if not status_.set_up:
  <p class="missing" id="not-set-up">{{_('updates.not_set_up')}}</p>
  <p class="hint">{{_('updates.not_set_up_hint')}}</p>
% else:
  <dl class="facts">
    <dt>{{_('updates.installed')}}</dt><dd>{{status_.installed or '–'}}</dd>
    <dt>{{_('updates.available')}}</dt><dd>{{status_.available or _('updates.up_to_date')}}</dd>
    <dt>{{_('updates.state')}}</dt><dd id="update-state">{{_('updates.state_' + status_.state)}}</dd>
  </dl>
  % if status_.progress is not None:
  <progress max="100" value="{{status_.progress}}" aria-label="{{_('updates.progress')}}">{{f'{status_.progress:.0f}'}}%</progress>
  % elif status_.state in ('checking', 'downloading', 'installing', 'rebooting'):
  <progress aria-label="{{_('updates.progress')}}"></progress>
  % end
  % if status_.notes_url:
  <p><a href="{{status_.notes_url}}" rel="noopener">{{_('updates.notes')}}</a></p>
  % end
  % if status_.last_result:
  <p>{{_('updates.last_result')}}: {{status_.last_result}}</p>
  % end
  % for e in status_.errors:
  <p class="error">{{e}}</p>
  % end
  % if requested:
  <p class="ok" role="status">{{_('updates.requested_' + requested)}}</p>
  % end
  % if is_admin:
  <form method="post" action="/system/update" class="buttons">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" name="action" value="check">{{_('updates.check')}}</button>
    % if status_.available:
    <button type="submit" name="action" value="install" class="primary">{{_('updates.install')}}</button>
    % end
  </form>
  % end
  % if status_.log:
  <details><summary>{{_('updates.log')}}</summary><pre>{{status_.log}}</pre></details>
  % end
% end
</section>
