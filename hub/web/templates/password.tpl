% rebase('base.tpl')
<section class="card narrow">
<h1>{{_('password.title')}}</h1>
% include('form_error.tpl')
% if done:
<p class="ok" role="status">{{_('password.done')}}</p>
% end
<form method="post" action="/account/password" class="stack">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label for="old">{{_('password.old')}}</label>
  <input id="old" name="old" type="password" required autocomplete="current-password">
  <label for="new">{{_('password.new')}}</label>
  <input id="new" name="new" type="password" required autocomplete="new-password">
  <label for="confirm">{{_('setup.confirm')}}</label>
  <input id="confirm" name="confirm" type="password" required autocomplete="new-password">
  <button type="submit" class="primary">{{_('password.submit')}}</button>
</form>
</section>
