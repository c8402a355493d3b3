<svg class="bars" viewBox="0 0 480 140" role="img" aria-labelledby="{{chart_id}}-cap">
  <defs>
    <pattern id="hatch-{{chart_id}}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
      <rect width="6" height="6" class="hatch-bg"/><line x1="0" y1="0" x2="0" y2="6" class="hatch-line"/>
    </pattern>
  </defs>
  % for i, b in enumerate(bars):
  <rect x="{{b.x}}" y="{{b.y}}" width="{{b.width}}" height="{{b.height}}" class="{{b.css}}"><title>{{b.label}}: {{b.value}}</title></rect>
  % if 'bar-best' in b.css:
  <rect x="{{b.x}}" y="{{b.y}}" width="{{b.width}}" height="{{b.height}}" fill="url(#hatch-{{chart_id}})" class="best-overlay"/>
  % end
  % end
  % step = max(1, len(bars) // 6)
  % for i in range(0, len(bars), step):
  <text x="{{bars[i].x}}" y="136" class="axis">{{bars[i].label}}</text>
  % end
</svg>
