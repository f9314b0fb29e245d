package i18n

// Keys of the catalogue. A comment lists the fmt arguments of a text.
const (
	// Consent dialog (the rest of the dialog's wording is built by pinentry).
	ConsentOperation Key = "consent.operation"

	// Tray: status line (and tooltip).
	TrayStatusNoService   Key = "tray.status.no-service"
	TrayStatusBusy        Key = "tray.status.busy" // operation
	TrayStatusNoReader    Key = "tray.status.no-reader"
	TrayStatusNoCard      Key = "tray.status.no-card"
	TrayStatusUnsupported Key = "tray.status.unsupported"
	TrayStatusPINBlocked  Key = "tray.status.pin-blocked"
	TrayStatusPUKBlocked  Key = "tray.status.puk-blocked"
	TrayStatusReady       Key = "tray.status.ready" // generation
	TrayInProgress        Key = "tray.in-progress"  // item label

	// Tray: menu items.
	TraySites          Key = "tray.sites"
	TraySitePolicy     Key = "tray.site.policy"  // origin
	TraySiteConfig     Key = "tray.site.config"  // origin
	TraySiteRevoke     Key = "tray.site.revoke"  // origin
	TraySiteOnce       Key = "tray.site.once"    // origin
	TraySiteDenied     Key = "tray.site.denied"  // origin
	TraySitesMore      Key = "tray.sites.more"   // count
	TraySitesNone      Key = "tray.sites.none"   //
	TraySitesLocked    Key = "tray.sites.locked" //
	TraySiteRevoked    Key = "tray.site.revoked" // origin
	TrayActivity       Key = "tray.activity"
	TrayActivityEntry  Key = "tray.activity.entry" // time, operation, origin, result
	TrayActivityLocal  Key = "tray.activity.local"
	TrayActivityNone   Key = "tray.activity.none"
	TrayExportCSV      Key = "tray.export.csv"
	TrayExportJSON     Key = "tray.export.json"
	TrayExported       Key = "tray.exported"     // path
	TrayExportFailed   Key = "tray.export.error" // error
	TrayChangePIN      Key = "tray.change-pin"
	TrayUnblockPIN     Key = "tray.unblock-pin"
	TrayDoctor         Key = "tray.doctor"
	TrayDoctorRunning  Key = "tray.doctor.running"
	TrayDoctorFailed   Key = "tray.doctor.error" // error
	TrayOpenLogs       Key = "tray.open-logs"
	TrayOpenFailed     Key = "tray.open.error" // path, error
	TrayAbout          Key = "tray.about"      // version
	TrayAboutText      Key = "tray.about.text" // version
	TrayQuit           Key = "tray.quit"
	TrayHeadless       Key = "tray.headless"        // reason
	TrayNoDisplay      Key = "tray.reason.display"  //
	TrayHeadlessFlag   Key = "tray.reason.flag"     //
	TrayNoTrayBuild    Key = "tray.reason.notray"   //
	TrayActionDisabled Key = "tray.action.disabled" //

	// Operations and results (tray activity, ledger export).
	OpAuthenticate Key = "op.authenticate"
	OpSign         Key = "op.sign"
	OpReadCard     Key = "op.read-card"
	OpChangePIN    Key = "op.change-pin"
	OpUnblockPIN   Key = "op.unblock-pin"
	OpUnknown      Key = "op.unknown"
	ResultOK       Key = "result.ok"
	ResultFailed   Key = "result.failed" // code

	// PIN management (tray flows): results and errors.
	PINChanged      Key = "pin.changed"
	PINUnblocked    Key = "pin.unblocked"
	PINMismatch     Key = "pin.mismatch"
	PINMismatchStop Key = "pin.mismatch.stop"
	PINWrong        Key = "pin.wrong" // tries left
	PINWrongLast    Key = "pin.wrong.last"
	PINBlockedNow   Key = "pin.blocked.now"
	PINBlocked      Key = "pin.blocked"
	PUKWrong        Key = "puk.wrong" // tries left
	PUKWrongLast    Key = "puk.wrong.last"
	PUKBlockedNow   Key = "puk.blocked.now"
	PUKBlocked      Key = "puk.blocked"
	PINFormat       Key = "pin.format"
	PINTimeout      Key = "pin.timeout"
	PINCancelled    Key = "pin.cancelled"
	PINBusy         Key = "pin.busy"
	PINNoDialog     Key = "pin.no-dialog"
	PINCardRemoved  Key = "pin.card-removed"
	PINCardChanged  Key = "pin.card-changed"
	PINNoCard       Key = "pin.no-card"
	PINNoReader     Key = "pin.no-reader"
	PINNoService    Key = "pin.no-service"
	PINUnsupported  Key = "pin.unsupported"
	PINNotPermitted Key = "pin.not-permitted"
	PINCardError    Key = "pin.card-error"
)

var catalogue = map[Key]msg{
	ConsentOperation: {
		FR: "utiliser votre carte CPS (lecture de l'identité, authentification, signature)",
		EN: "use your CPS card (reading your identity, authentication, signature)",
	},

	TrayStatusNoService:   {FR: "Service carte à puce injoignable", EN: "Smart-card service unreachable"},
	TrayStatusBusy:        {FR: "Opération en cours : %s", EN: "Operation in progress: %s"},
	TrayStatusNoReader:    {FR: "Aucun lecteur de carte", EN: "No card reader"},
	TrayStatusNoCard:      {FR: "Aucune carte dans le lecteur", EN: "No card in the reader"},
	TrayStatusUnsupported: {FR: "Carte non reconnue (pas une carte CPS)", EN: "Card not recognised (not a CPS card)"},
	TrayStatusPINBlocked:  {FR: "Code porteur bloqué : débloquez-le avec le code de déblocage", EN: "PIN blocked: unblock it with the unblocking code"},
	TrayStatusPUKBlocked:  {FR: "Carte bloquée définitivement : demandez une nouvelle carte", EN: "Card blocked for good: ask for a new card"},
	TrayStatusReady:       {FR: "Carte %s prête", EN: "%s card ready"},
	TrayInProgress:        {FR: "%s (en cours)", EN: "%s (in progress)"},

	TraySites:          {FR: "Sites autorisés", EN: "Allowed sites"},
	TraySitePolicy:     {FR: "%s (administrateur)", EN: "%s (administrator)"},
	TraySiteConfig:     {FR: "%s (configuration)", EN: "%s (configuration)"},
	TraySiteRevoke:     {FR: "Retirer %s", EN: "Remove %s"},
	TraySiteOnce:       {FR: "%s (cette fois seulement)", EN: "%s (this time only)"},
	TraySiteDenied:     {FR: "%s (interdit par l'administrateur)", EN: "%s (forbidden by the administrator)"},
	TraySitesMore:      {FR: "… et %d autres", EN: "… and %d more"},
	TraySitesNone:      {FR: "Aucun site autorisé", EN: "No allowed site"},
	TraySitesLocked:    {FR: "Liste fixée par l'administrateur", EN: "List set by the administrator"},
	TraySiteRevoked:    {FR: "%s n'est plus autorisé", EN: "%s is no longer allowed"},
	TrayActivity:       {FR: "Activité récente", EN: "Recent activity"},
	TrayActivityEntry:  {FR: "%s · %s · %s · %s", EN: "%s · %s · %s · %s"},
	TrayActivityLocal:  {FR: "cet ordinateur", EN: "this computer"},
	TrayActivityNone:   {FR: "Aucune activité", EN: "No activity"},
	TrayExportCSV:      {FR: "Exporter le journal (CSV)", EN: "Export the activity log (CSV)"},
	TrayExportJSON:     {FR: "Exporter le journal (JSON)", EN: "Export the activity log (JSON)"},
	TrayExported:       {FR: "Journal exporté : %s", EN: "Activity log exported: %s"},
	TrayExportFailed:   {FR: "Échec de l'export : %v", EN: "Export failed: %v"},
	TrayChangePIN:      {FR: "Changer le code porteur…", EN: "Change the PIN…"},
	TrayUnblockPIN:     {FR: "Débloquer le code porteur…", EN: "Unblock the PIN…"},
	TrayDoctor:         {FR: "Diagnostic…", EN: "Diagnostics…"},
	TrayDoctorRunning:  {FR: "Diagnostic en cours…", EN: "Running diagnostics…"},
	TrayDoctorFailed:   {FR: "Le diagnostic a échoué : %v", EN: "Diagnostics failed: %v"},
	TrayOpenLogs:       {FR: "Ouvrir le dossier des journaux", EN: "Open the log folder"},
	TrayOpenFailed:     {FR: "Impossible d'ouvrir %s : %v", EN: "Cannot open %s: %v"},
	TrayAbout:          {FR: "À propos de cpsagent %s", EN: "About cpsagent %s"},
	TrayAboutText:      {FR: "cpsagent %s — agent local pour la carte CPS", EN: "cpsagent %s — local agent for the CPS card"},
	TrayQuit:           {FR: "Quitter", EN: "Quit"},
	TrayHeadless:       {FR: "cpsagent fonctionne sans icône de notification (%s)", EN: "cpsagent runs without a tray icon (%s)"},
	TrayNoDisplay:      {FR: "aucun affichage graphique : DISPLAY et WAYLAND_DISPLAY absents ou injoignables", EN: "no graphical display: DISPLAY and WAYLAND_DISPLAY unset or unreachable"},
	TrayHeadlessFlag:   {FR: "option --headless", EN: "--headless option"},
	TrayNoTrayBuild:    {FR: "version construite sans icône de notification", EN: "built without the tray icon"},
	TrayActionDisabled: {FR: "Action indisponible pour le moment", EN: "Action not available right now"},

	OpAuthenticate: {FR: "Authentification", EN: "Authentication"},
	OpSign:         {FR: "Signature", EN: "Signature"},
	OpReadCard:     {FR: "Lecture de l'identité", EN: "Identity read"},
	OpChangePIN:    {FR: "Changement du code porteur", EN: "PIN change"},
	OpUnblockPIN:   {FR: "Déblocage du code porteur", EN: "PIN unblock"},
	OpUnknown:      {FR: "Opération", EN: "Operation"},
	ResultOK:       {FR: "réussi", EN: "succeeded"},
	ResultFailed:   {FR: "échec (%s)", EN: "failed (%s)"},

	PINChanged:      {FR: "Votre code porteur a été changé. Utilisez désormais le nouveau code.", EN: "Your PIN has been changed. Use the new PIN from now on."},
	PINUnblocked:    {FR: "Votre code porteur est débloqué et remplacé par le nouveau code.", EN: "Your PIN is unblocked and replaced by the new PIN."},
	PINMismatch:     {FR: "Les deux saisies du nouveau code sont différentes. Recommencez.", EN: "The two entries of the new PIN differ. Try again."},
	PINMismatchStop: {FR: "Les saisies du nouveau code ne correspondaient pas : rien n'a été changé sur la carte.", EN: "The new PIN entries did not match: nothing was changed on the card."},
	PINWrong:        {FR: "Code porteur incorrect. Il reste %d essais avant le blocage de la carte.", EN: "Wrong PIN. %d tries left before the card is blocked."},
	PINWrongLast:    {FR: "Code porteur incorrect. ATTENTION : il reste un seul essai avant le blocage de la carte.", EN: "Wrong PIN. WARNING: only one try left before the card is blocked."},
	PINBlockedNow:   {FR: "Code porteur incorrect : le code est maintenant bloqué. Débloquez-le avec votre code de déblocage (8 chiffres, reçu avec la carte).", EN: "Wrong PIN: the PIN is now blocked. Unblock it with your unblocking code (8 digits, sent with the card)."},
	PINBlocked:      {FR: "Le code porteur est bloqué. Débloquez-le avec votre code de déblocage (8 chiffres, reçu avec la carte).", EN: "The PIN is blocked. Unblock it with your unblocking code (8 digits, sent with the card)."},
	PUKWrong:        {FR: "Code de déblocage incorrect. Il reste %d essais.", EN: "Wrong unblocking code. %d tries left."},
	PUKWrongLast:    {FR: "Code de déblocage incorrect. ATTENTION : il reste un seul essai avant le blocage définitif de la carte.", EN: "Wrong unblocking code. WARNING: only one try left before the card is blocked for good."},
	PUKBlockedNow:   {FR: "Code de déblocage incorrect : la carte est maintenant bloquée définitivement. Demandez une nouvelle carte CPS (Agence du Numérique en Santé).", EN: "Wrong unblocking code: the card is now blocked for good. Ask for a new CPS card (Agence du Numérique en Santé)."},
	PUKBlocked:      {FR: "Le code de déblocage est bloqué : la carte ne peut plus être débloquée. Demandez une nouvelle carte CPS (Agence du Numérique en Santé).", EN: "The unblocking code is blocked: the card can no longer be unblocked. Ask for a new CPS card (Agence du Numérique en Santé)."},
	PINFormat:       {FR: "Format de code invalide (4 chiffres pour le code porteur, 8 pour le code de déblocage). Aucun essai n'a été consommé.", EN: "Invalid code format (4 digits for the PIN, 8 for the unblocking code). No try was used."},
	PINTimeout:      {FR: "Délai de saisie dépassé : rien n'a été changé sur la carte.", EN: "Entry timed out: nothing was changed on the card."},
	PINCancelled:    {FR: "Opération annulée : rien n'a été changé sur la carte.", EN: "Cancelled: nothing was changed on the card."},
	PINBusy:         {FR: "La carte ou une fenêtre de saisie est déjà utilisée. Réessayez dans un instant.", EN: "The card or a code dialog is already in use. Try again in a moment."},
	PINNoDialog:     {FR: "Impossible d'afficher la fenêtre de saisie du code (programme pinentry absent ou en échec). Lancez « cpsagent doctor ».", EN: "Cannot show the code dialog (pinentry program missing or failing). Run \"cpsagent doctor\"."},
	PINCardRemoved:  {FR: "La carte a été retirée pendant l'opération : rien n'a été changé. Réinsérez-la et recommencez.", EN: "The card was removed during the operation: nothing was changed. Insert it again and retry."},
	PINCardChanged:  {FR: "La carte a été remplacée par une autre pendant la saisie : opération refusée.", EN: "The card was replaced by another one during the entry: operation refused."},
	PINNoCard:       {FR: "Aucune carte dans le lecteur. Insérez votre carte CPS.", EN: "No card in the reader. Insert your CPS card."},
	PINNoReader:     {FR: "Aucun lecteur de carte détecté. Branchez le lecteur.", EN: "No card reader found. Plug in the reader."},
	PINNoService:    {FR: "Le service carte à puce (PC/SC) ne répond pas. Lancez « cpsagent doctor ».", EN: "The smart-card service (PC/SC) does not answer. Run \"cpsagent doctor\"."},
	PINUnsupported:  {FR: "Cette carte n'est pas une carte CPS prise en charge.", EN: "This card is not a supported CPS card."},
	PINNotPermitted: {FR: "Opération impossible par cette interface de la carte (sans contact) : utilisez le lecteur à contact.", EN: "Operation not possible over this card interface (contactless): use the contact reader."},
	PINCardError:    {FR: "La carte a répondu de façon inattendue : rien n'a été changé. Lancez « cpsagent doctor » si cela se reproduit.", EN: "The card answered unexpectedly: nothing was changed. Run \"cpsagent doctor\" if it happens again."},
}
