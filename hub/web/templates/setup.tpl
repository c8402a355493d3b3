% rebase('base.tpl')
<section class="card narrow">
<h1>{{_('setup.title')}}</h1>
<p>{{_('setup.intro')}}</p>
% include('form_error.tpl')
<form method="post" action="/setup" class="stack">
  <input type="hidden" name="csrf" value="{{csrf}}">
  % if ask_code:
  <label for="setup_code">{{_('setup.code')}}</label>
  <input id="setup_code" name="setup_code" required autocomplete="one-time-code" inputmode="text">
  <p class="hint">{{_('setup.code_hint')}}</p>
  % end
  <label for="username">{{_('login.username')}}</label>
  <input id="username" name="username" required autocomplete="username" maxlength="64">
  <label for="password">{{_('login.password')}}</label>
  <input id="password" name="password" type="password" required autocomplete="new-password">
  <label for="confirm">{{_('setup.confirm')}}</label>
  <input id="confirm" name="confirm" type="password" required autocomplete="new-password">
  <button type="submit" class="primary">{{_('setup.submit')}}</button>
</form>
</section>
