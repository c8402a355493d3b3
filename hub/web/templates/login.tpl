% rebase('base.tpl')
<section class="card narrow">
<h1>{{_('login.title')}}</h1>
% include('form_error.tpl')
<form method="post" action="/login" class="stack">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label for="username">{{_('login.username')}}</label>
  <input id="username" name="username" required autocomplete="username">
  <label for="password">{{_('login.password')}}</label>
  <input id="password" name="password" type="password" required autocomplete="current-password">
  <button type="submit" class="primary">{{_('login.submit')}}</button>
</form>
<p class="hint">{{_('login.forgot')}}</p>
</section>
