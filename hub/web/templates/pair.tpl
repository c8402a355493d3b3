% rebase('base.tpl')
<h1>{{_('pair.page_title')}}</h1>
<section class="card">
<ol class="stack">
  <li>{{_('pair.step1')}}</li>
  <li>{{_('pair.step2')}}</li>
  <li>{{_('pair.step3')}}</li>
</ol>
<p class="muted" id="pair-waiting">{{_('pair.waiting')}}</p>
% if pending:
<ul>
% for p in pending:
  <li>{{p.get('name') or p.get('type') or '?'}} · {{p.get('ip')}}</li>
% end
</ul>
% end
</section>
