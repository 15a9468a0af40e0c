package web

// The message catalogue: every label of the console, in English and
// Simplified Chinese. Verbs (%d, %s) are filled by locale.T.

var messagesEN = map[string]string{
	"nav.label": "Sections", "nav.skip": "Skip to content", "nav.logout": "Sign out", "nav.prefs": "Preferences",
	"nav.search": "Search", "nav.holds": "Legal holds", "nav.audit": "Audit log", "nav.backups": "Backups",
	"nav.status": "System status", "nav.users": "Users", "nav.tokens": "API tokens", "nav.retention": "Retention schedule",
	"footer.zone": "Times shown in",

	"error.title": "Error", "error.home": "Back to the start page",
	"error.csrf":      "The form expired or did not come from this console. Reload the page and try again.",
	"error.forbidden": "Your role may not open this page.",

	"login.title": "Sign in", "login.name": "User name", "login.password": "Password", "login.submit": "Sign in",
	"login.bad":    "Wrong user name or password.",
	"login.locked": "Too many failed sign-ins. This account is locked for a while; try again later or ask an admin.",
	"login.rate":   "Too many sign-in attempts from your address. Wait a minute.",

	"search.title": "Search cases", "search.label": "Search", "search.submit": "Search", "search.help": "Search syntax",
	"search.help.words":   "all words, typos tolerated (also Chinese text)",
	"search.help.phrase":  "an exact phrase",
	"search.help.exclude": "leave out cases with a word",
	"search.help.fields":  "filter by field",
	"search.help.number":  "a case by its number",
	"search.help.dates":   "contacts in a date range",
	"search.facets":       "Filters", "search.total": "%d cases found", "search.none": "No case matches.", "search.pages": "Result pages",
	"facet.status": "Status", "facet.channel": "Channel", "facet.tag": "Tag", "facet.purpose": "Purpose",
	"pager.prev": "Previous", "pager.next": "Next", "pager.page": "Page %d",

	"case.title": "Case #%d", "case.status": "Status", "case.priority": "Priority", "case.customer": "Customer",
	"case.customer_link": "Open the customer", "case.assignee": "Assignee", "case.tags": "Tags (comma-separated)",
	"case.created": "Created", "case.updated": "Updated", "case.subject": "Subject",
	"case.holds": "Legal holds", "case.timeline": "Timeline", "case.retain_until": "Kept until",
	"case.add_contact": "Add a contact", "case.change": "Change the case", "case.save": "Save",
	"case.manage_note": "Only supervisors close and reassign cases.",
	"contact.channel":  "Channel", "contact.direction": "Direction", "contact.body": "Message", "contact.purposes": "Purposes",

	"customer.email": "E-mail", "customer.phone": "Phone", "customer.ref": "External reference", "customer.locale": "Language",
	"customer.consents": "Consents", "customer.consent_location": "location", "customer.consent_marketing": "marketing",
	"customer.consent_personalization": "personalization", "customer.cases": "Cases",

	"holds.title": "Legal holds", "holds.place": "Place a hold", "holds.matter": "Matter", "holds.reason": "Reason",
	"holds.scope": "What it covers (any of)", "holds.case_ids": "Case IDs (comma-separated)",
	"holds.customer_ids": "Customer IDs (comma-separated)", "holds.query": "Search query",
	"holds.from": "From", "holds.to": "To", "holds.list": "Holds", "holds.state": "State",
	"holds.placed": "Placed", "holds.by": "By", "holds.active": "active", "holds.grace": "released, in grace",
	"holds.released": "released", "holds.covers": "Covers now", "holds.counts": "%d cases, %d contacts, %d attachments",
	"holds.report": "Covered items", "holds.kind": "Kind", "holds.item": "Item", "holds.why": "Why", "holds.since": "Since",
	"holds.disposed": "disposed", "holds.release": "Release the hold", "holds.release_reason": "Reason for the release",

	"audit.title": "Audit log", "audit.actor": "Actor", "audit.action": "Action", "audit.target_type": "Target type",
	"audit.target_id": "Target ID", "audit.outcome": "Outcome", "audit.filter": "Filter", "audit.verify": "Verify the chain",
	"audit.verified": "The chain is intact: %d events verified up to #%d.", "audit.broken": "The chain is broken: %s",
	"audit.time": "Time", "audit.target": "Target",

	"backups.title": "Backups", "backups.run": "Run a backup now", "backups.complete": "Complete backups",
	"backups.id": "ID", "backups.snapshot": "Snapshot", "backups.blobs": "Attachments", "backups.verify": "Verify",
	"backups.damaged": "Damaged", "backups.runs": "Recent runs", "backups.kind": "Kind", "backups.started": "Started",
	"backups.finished": "Finished", "backups.verify_title": "Verify backup %s",
	"backups.verify_ok":   "The backup is intact: %d files checked.",
	"backups.verify_bad":  "The backup has problems:",
	"backups.unreachable": "The backup target does not answer; try again later.",
	"backups.running":     "A backup or forget is already running.",

	"status.title": "System status", "status.readiness": "Readiness", "status.check": "Check", "status.detail": "Detail",
	"status.index": "Search index", "status.engine": "Engine", "status.documents": "Cases indexed",
	"status.backlog": "Changes not yet indexed", "status.lag": "Index lag", "status.jobs": "Last runs of the scheduled jobs",
	"status.job": "Job", "status.tick": "Last run", "status.replica": "Replica", "status.no_jobs": "No scheduled job has run yet.",

	"users.title": "Users", "users.role": "Role", "users.actions": "Actions", "users.disabled": "disabled",
	"users.enabled": "enabled", "users.locked": "locked until %s", "users.disable": "Disable", "users.enable": "Enable",
	"users.signout": "Sign out everywhere:", "users.new_password": "New password", "users.reset": "Reset password",
	"users.add": "Add a user", "users.self": "You cannot disable yourself.",

	"tokens.title": "API tokens", "tokens.once": "The new token (shown once; copy it now):", "tokens.revoked": "revoked",
	"tokens.revoke": "Revoke", "tokens.create": "Create a token",

	"retention.title": "Retention schedule", "retention.version": "Version %d is in force.", "retention.purposes": "Purposes",
	"retention.purpose": "Purpose", "retention.keep": "Keep", "retention.from": "Counted from", "retention.action": "Then",
	"retention.categories": "Data categories", "retention.category": "Category", "retention.versions": "Versions",
	"retention.version_col": "Version", "retention.digest": "Digest",
	"retention.edit_note": "The schedule is changed with `casevault retention schedule apply` or PUT /api/v1/retention/schedule.",

	"prefs.title": "Preferences", "prefs.zone": "Time zone (IANA name; empty: your browser's)", "prefs.lang": "Language",
	"prefs.save": "Save", "prefs.everywhere": "Sign out everywhere",
	"prefs.everywhere_note": "Ends every session of yours, on every device.",

	"flash.prefs": "Preferences saved.", "flash.case_updated": "Case updated.", "flash.contact_added": "Contact added.",
	"flash.hold_placed": "Hold placed.", "flash.hold_released": "Hold released.", "flash.backup_started": "Backup started.",
	"flash.user_added": "User added.", "flash.user_changed": "User changed.", "flash.token_revoked": "Token revoked.",
}

var messagesZH = map[string]string{
	"nav.label": "栏目", "nav.skip": "跳到正文", "nav.logout": "退出登录", "nav.prefs": "偏好设置",
	"nav.search": "搜索", "nav.holds": "法律保全", "nav.audit": "审计日志", "nav.backups": "备份",
	"nav.status": "系统状态", "nav.users": "用户", "nav.tokens": "API 令牌", "nav.retention": "保留期限表",
	"footer.zone": "时间显示时区",

	"error.title": "出错了", "error.home": "返回首页",
	"error.csrf":      "表单已过期或并非来自本控制台。请刷新页面后重试。",
	"error.forbidden": "您的角色无权打开此页面。",

	"login.title": "登录", "login.name": "用户名", "login.password": "密码", "login.submit": "登录",
	"login.bad":    "用户名或密码错误。",
	"login.locked": "登录失败次数过多，账户已被暂时锁定；请稍后再试或联系管理员。",
	"login.rate":   "您的地址登录尝试过多，请等待一分钟。",

	"search.title": "搜索案件", "search.label": "搜索", "search.submit": "搜索", "search.help": "搜索语法",
	"search.help.words":   "包含所有词语，容忍拼写错误（也支持中文）",
	"search.help.phrase":  "精确短语",
	"search.help.exclude": "排除含某词的案件",
	"search.help.fields":  "按字段筛选",
	"search.help.number":  "按编号查找案件",
	"search.help.dates":   "某日期范围内的联系记录",
	"search.facets":       "筛选", "search.total": "找到 %d 个案件", "search.none": "没有匹配的案件。", "search.pages": "结果分页",
	"facet.status": "状态", "facet.channel": "渠道", "facet.tag": "标签", "facet.purpose": "用途",
	"pager.prev": "上一页", "pager.next": "下一页", "pager.page": "第 %d 页",

	"case.title": "案件 #%d", "case.status": "状态", "case.priority": "优先级", "case.customer": "客户",
	"case.customer_link": "查看客户", "case.assignee": "负责人", "case.tags": "标签（逗号分隔）",
	"case.created": "创建时间", "case.updated": "更新时间", "case.subject": "主题",
	"case.holds": "法律保全", "case.timeline": "时间线", "case.retain_until": "保留至",
	"case.add_contact": "添加联系记录", "case.change": "修改案件", "case.save": "保存",
	"case.manage_note": "只有主管可以关闭和重新分配案件。",
	"contact.channel":  "渠道", "contact.direction": "方向", "contact.body": "内容", "contact.purposes": "用途",

	"customer.email": "电子邮件", "customer.phone": "电话", "customer.ref": "外部编号", "customer.locale": "语言",
	"customer.consents": "同意事项", "customer.consent_location": "位置", "customer.consent_marketing": "营销",
	"customer.consent_personalization": "个性化", "customer.cases": "案件",

	"holds.title": "法律保全", "holds.place": "设立保全", "holds.matter": "事项", "holds.reason": "原因",
	"holds.scope": "保全范围（任一）", "holds.case_ids": "案件 ID（逗号分隔）",
	"holds.customer_ids": "客户 ID（逗号分隔）", "holds.query": "搜索查询",
	"holds.from": "起始", "holds.to": "截止", "holds.list": "保全列表", "holds.state": "状态",
	"holds.placed": "设立时间", "holds.by": "设立人", "holds.active": "生效中", "holds.grace": "已解除，宽限期内",
	"holds.released": "已解除", "holds.covers": "当前覆盖", "holds.counts": "%d 个案件，%d 条联系记录，%d 个附件",
	"holds.report": "覆盖的项目", "holds.kind": "类型", "holds.item": "项目", "holds.why": "原因", "holds.since": "起始于",
	"holds.disposed": "已处置", "holds.release": "解除保全", "holds.release_reason": "解除原因",

	"audit.title": "审计日志", "audit.actor": "操作者", "audit.action": "操作", "audit.target_type": "对象类型",
	"audit.target_id": "对象 ID", "audit.outcome": "结果", "audit.filter": "筛选", "audit.verify": "校验哈希链",
	"audit.verified": "哈希链完整：已校验 %d 条事件，至 #%d。", "audit.broken": "哈希链已损坏：%s",
	"audit.time": "时间", "audit.target": "对象",

	"backups.title": "备份", "backups.run": "立即备份", "backups.complete": "完整备份",
	"backups.id": "ID", "backups.snapshot": "快照时间", "backups.blobs": "附件", "backups.verify": "校验",
	"backups.damaged": "已损坏", "backups.runs": "最近运行", "backups.kind": "类型", "backups.started": "开始",
	"backups.finished": "结束", "backups.verify_title": "校验备份 %s",
	"backups.verify_ok":   "备份完整：已检查 %d 个文件。",
	"backups.verify_bad":  "备份存在问题：",
	"backups.unreachable": "备份目标无响应，请稍后再试。",
	"backups.running":     "已有备份或清理任务在运行。",

	"status.title": "系统状态", "status.readiness": "就绪状态", "status.check": "检查项", "status.detail": "详情",
	"status.index": "搜索索引", "status.engine": "引擎", "status.documents": "已索引案件",
	"status.backlog": "待索引的变更", "status.lag": "索引延迟", "status.jobs": "定时任务最近运行",
	"status.job": "任务", "status.tick": "最近运行", "status.replica": "副本", "status.no_jobs": "尚无定时任务运行过。",

	"users.title": "用户", "users.role": "角色", "users.actions": "操作", "users.disabled": "已停用",
	"users.enabled": "已启用", "users.locked": "锁定至 %s", "users.disable": "停用", "users.enable": "启用",
	"users.signout": "在所有设备退出：", "users.new_password": "新密码", "users.reset": "重置密码",
	"users.add": "添加用户", "users.self": "不能停用自己。",

	"tokens.title": "API 令牌", "tokens.once": "新令牌（仅显示一次，请立即复制）：", "tokens.revoked": "已吊销",
	"tokens.revoke": "吊销", "tokens.create": "创建令牌",

	"retention.title": "保留期限表", "retention.version": "当前生效版本：%d。", "retention.purposes": "用途",
	"retention.purpose": "用途", "retention.keep": "保留", "retention.from": "起算", "retention.action": "到期后",
	"retention.categories": "数据类别", "retention.category": "类别", "retention.versions": "版本",
	"retention.version_col": "版本", "retention.digest": "摘要",
	"retention.edit_note": "保留期限表通过 `casevault retention schedule apply` 或 PUT /api/v1/retention/schedule 修改。",

	"prefs.title": "偏好设置", "prefs.zone": "时区（IANA 名称；留空则使用浏览器时区）", "prefs.lang": "语言",
	"prefs.save": "保存", "prefs.everywhere": "在所有设备退出",
	"prefs.everywhere_note": "结束您在所有设备上的会话。",

	"flash.prefs": "偏好已保存。", "flash.case_updated": "案件已更新。", "flash.contact_added": "联系记录已添加。",
	"flash.hold_placed": "保全已设立。", "flash.hold_released": "保全已解除。", "flash.backup_started": "备份已开始。",
	"flash.user_added": "用户已添加。", "flash.user_changed": "用户已修改。", "flash.token_revoked": "令牌已吊销。",
}
