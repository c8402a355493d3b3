% rebase('base.tpl')
<h1>{{_('updates.title')}}</h1>
<section class="card" id="update-status" data-state="{{status_.state}}">
% if not status_.set_up:
  <p class="missing" id="not-set-up">{{_('updates.not_set_up')}}</p>
  <p class="hint">{{_('updates.not_set_up_hint')}}</p>
% else:
  % installed, available, progress, last = status_.installed, status_.available, status_.progress, status_.last_result
  <dl class="facts">
    <dt>{{_('updates.installed')}}</dt>
    <dd id="update-installed">{{(installed and installed.version) or '–'}}{{f" · {_('updates.slot')} {installed.slot}" if installed and installed.slot else ''}}</dd>
    <dt>{{_('updates.available')}}</dt>
    <dd id="update-available">{{available.version if available else _('updates.up_to_date')}}</dd>
    <dt>{{_('updates.state')}}</dt><dd id="update-state">{{_('updates.state_' + status_.state)}}</dd>
    % if status_.last_poll:
    <dt>{{_('updates.last_poll')}}</dt><dd>{{status_.last_poll}}</dd>
    % end
  </dl>
  % if progress is not None and progress.percent is not None:
  <progress max="100" value="{{progress.percent}}" aria-label="{{_('updates.progress')}}">{{progress.percent}}%</progress>
  % elif status_.state in ('downloading', 'installing', 'rebooting'):
  <progress aria-label="{{_('updates.progress')}}"></progress>
  % end
  % if status_.message:
  <p id="update-message">{{status_.message}}</p>
  % end
  % if status_.server_error:
  <p class="error" id="update-server-error">{{_('updates.server_error')}}: {{status_.server_error}}</p>
  % end
  % if last:
  <p id="update-last-result">{{_('updates.last_result')}}: {{_('updates.result_' + last.result)}}{{f' ({last.version})' if last.version else ''}}{{f' – {last.message}' if last.message else ''}}</p>
  % end
  % for e in status_.errors:
  <p class="error">{{e}}</p>
  % end
  % if requested:
  <p class="ok" role="status">{{_('updates.requested_' + requested)}}</p>
  % end
  % if error:
  <p class="error" role="alert" id="update-error">{{error}}</p>
  % end
  % if is_admin and status_.can_check:
  <form method="post" action="/system/update" class="buttons">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" name="action" value="check_now">{{_('updates.check')}}</button>
    % if status_.awaits_consent:
    <input type="hidden" name="action_id" value="{{available.action_id}}">
    <button type="submit" name="action" value="install_now" class="primary">{{_('updates.install')}}</button>
    % end
    % if status_.can_cancel:
    <button type="submit" name="action" value="cancel">{{_('updates.cancel')}}</button>
    % end
  </form>
  % end
  % if last and last.log:
  <details><summary>{{_('updates.log')}}</summary><pre>{{'\n'.join(last.log)}}</pre></details>
  % end
% end
</section>
