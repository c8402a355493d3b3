% rebase('base.tpl')
<h1>{{_('users.title')}}</h1>
% include('form_error.tpl', error=None, error_text=error)
% if message:
<p class="ok" role="status">{{_('users.done')}}: {{message}}</p>
% end
<section class="card">
<table>
  <thead><tr><th scope="col">{{_('login.username')}}</th><th scope="col">{{_('users.admin')}}</th><th scope="col"></th></tr></thead>
  <tbody>
  % for u in users:
    <tr><td>{{u.username}}</td><td>{{_('users.yes') if u.is_admin else _('users.no')}}</td>
    <td><form method="post" action="/admin/users/reset"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="userid" value="{{u.id}}"><button type="submit">{{_('users.reset')}}</button></form></td></tr>
  % end
  </tbody>
</table>
</section>
<form method="post" action="/admin/users" class="card stack">
  <h2>{{_('users.add')}}</h2>
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label for="nu">{{_('login.username')}}</label><input id="nu" name="username" required maxlength="64" autocomplete="off">
  <label for="np">{{_('login.password')}}</label><input id="np" name="password" type="password" required autocomplete="new-password">
  <button type="submit" class="primary">{{_('users.add')}}</button>
</form>
